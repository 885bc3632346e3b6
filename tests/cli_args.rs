//! Every argument is checked before any work (issue #15, point 3): a value out of range ends the
//! program at once with clap's usage error (exit code 2) naming the flag, the value and what is
//! allowed: before the model is opened, before a calibration starts, before a file is written.
//! Also row 12: a model whose tokenizer and embedding disagree on the vocabulary's size is refused
//! at load naming both numbers.

mod common;
#[path = "../engine/tests/common/mod.rs"]
mod engine_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs sparsetop, killing it after `limit` (then the test fails: the check came too late).
fn run_within(args: &[&str], env: &[(&str, &Path)], limit: Duration) -> (Output, Duration) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sparsetop"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t0 = Instant::now();
    let mut child = cmd.spawn().expect("run sparsetop");
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "sparsetop {args:?} still ran after {limit:?}: the argument was not checked first; stderr: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = t0.elapsed();
    (child.wait_with_output().unwrap(), elapsed)
}

/// Asserts a usage error: exit code 2, the message naming each of `needles`, no panic, quickly.
fn assert_usage_error(args: &[&str], needles: &[&str]) {
    let (o, took) = run_within(args, &[], Duration::from_secs(20));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr should name {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(
        took < Duration::from_secs(2),
        "{args:?} took {took:?} to be refused"
    );
}

fn model() -> String {
    common::model_path().display().to_string()
}

fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Row 5: `-t 100000` made worker threads abort the process (exit 134) after 13-27 s, and
/// `-t 10000` took 910 MB. Every command with `-t` now refuses a count above 4 per CPU at once.
#[test]
fn thread_counts_beyond_four_per_cpu_are_refused_at_once() {
    let m = model();
    let at_most = format!("at most {}", max_threads());
    let too_many = (max_threads() + 1).to_string();
    for t in ["100000", "10000", too_many.as_str()] {
        for args in [
            vec!["run", "-m", &m, "-p", "hi", "-n", "1", "-t", t],
            vec!["bench", "-m", &m, "-t", t],
            vec!["perplexity", "-m", &m, "-f", "/dev/null", "-t", t],
            vec!["chat", "--plain", "-m", &m, "-t", t],
            vec!["calibrate", "-m", &m, "-t", t],
            vec!["convert", "-m", &m, "-t", t],
        ] {
            assert_usage_error(&args, &["--threads", t, &at_most]);
        }
    }
    // In a list too, and negative or non-numeric counts.
    assert_usage_error(
        &["bench", "-m", &m, "-t", "1,100000"],
        &["100000", &at_most],
    );
    assert_usage_error(
        &["run", "-m", &m, "-p", "hi", "-t", "-1"],
        &["'-1' is not a thread count"],
    );
    assert_usage_error(&["run", "-m", &m, "-p", "hi", "-t", "many"], &["'many'"]);
}

/// A count within the limit still runs (the limit refuses typos, not oversubscription).
#[test]
fn a_thread_count_at_the_limit_runs() {
    let m = model();
    let t = max_threads().to_string();
    let (o, _) = run_within(
        &[
            "run", "-m", &m, "-p", "Hello", "-n", "2", "--temp", "0", "-t", &t,
        ],
        &[],
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Row 11: `run --sparsity 1.5` was refused only after a 90-second calibration, which also wrote
/// a profile. Now it ends at parse time and nothing is written next to the model or in the cache.
#[test]
fn sparsity_out_of_range_is_refused_before_calibration_and_writes_nothing() {
    let dir = tempdir("sparsity");
    let link = dir.join("m.gguf");
    std::os::unix::fs::symlink(common::model_path(), &link).unwrap();
    let cache = dir.join("cache");
    let m = link.display().to_string();
    for (args, value) in [
        (
            vec!["run", "-m", &m, "-p", "hi", "--sparsity", "1.5"],
            "1.5",
        ),
        (
            vec!["run", "-m", &m, "-p", "hi", "--sparsity", "-0.1"],
            "-0.1",
        ),
        (
            vec!["run", "-m", &m, "-p", "hi", "--sparsity", "nan"],
            "nan",
        ),
        (vec!["bench", "-m", &m, "--sparsity", "0.95"], "0.95"),
        (
            vec!["perplexity", "-m", &m, "-f", "/dev/null", "--sparsity", "2"],
            "2",
        ),
        (vec!["chat", "--plain", "-m", &m, "--sparsity", "1"], "1"),
    ] {
        let (o, took) = run_within(
            &args,
            &[("SPARSETOP_CACHE_DIR", &cache)],
            Duration::from_secs(20),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--sparsity") && err.contains(value) && err.contains("0.9"),
            "{args:?}: {err}"
        );
        assert!(took < Duration::from_secs(1), "{args:?} took {took:?}");
    }
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("m.gguf")],
        "files written"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Row 14: `replay --speed 0` or `nan` was accepted and the replay froze.
#[test]
fn replay_speeds_out_of_range_are_refused() {
    for s in ["0", "nan", "-1", "inf", "-inf", "0.001", "1e6", "fast"] {
        assert_usage_error(
            &["replay", "no-such-recording.jsonl", "--speed", s],
            &["--speed", &format!("'{s}'"), "0.01 to 1000"],
        );
    }
}

#[test]
fn other_numeric_flags_are_checked_at_parse_time() {
    let m = model();
    let run = |extra: &[&str]| -> Vec<String> {
        ["run", "-m", &m, "-p", "hi"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let cases: Vec<(Vec<String>, &[&str])> = vec![
        (run(&["--top-p", "1.5"]), &["--top-p", "between 0 and 1"]),
        (run(&["--min-p", "-0.5"]), &["--min-p", "between 0 and 1"]),
        (run(&["--temp", "nan"]), &["--temp", "finite"]),
        (
            run(&["--repeat-penalty", "0"]),
            &["--repeat-penalty", "positive"],
        ),
        (run(&["-b", "0"]), &["--batch-size", "at least 1"]),
        (run(&["--mem-budget", "0"]), &["--mem-budget"]),
        (
            vec![
                "bench".into(),
                "-m".into(),
                m.clone(),
                "-r".into(),
                "0".into(),
            ],
            &["--repetitions", "at least 1"],
        ),
        (
            vec![
                "calibrate".into(),
                "-m".into(),
                m.clone(),
                "--tokens".into(),
                "0".into(),
            ],
            &["--tokens", "at least 1"],
        ),
        (
            vec!["chat".into(), "--fps".into(), "0".into()],
            &["--fps", "1 to 240"],
        ),
        (
            vec![
                "replay".into(),
                "x.jsonl".into(),
                "--tick-rate".into(),
                "5".into(),
            ],
            &["--tick-rate", "20 to 60000"],
        ),
    ];
    for (args, needles) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_usage_error(&args, needles);
    }
}

/// Row 12: a tokenizer with fewer tokens than the embedding has rows was not flagged (text of the
/// missing tokens was dropped, and a prompt of it was "the prompt is empty").
#[test]
fn a_model_whose_vocabulary_and_embedding_disagree_is_refused() {
    use engine_common::gguf_rewrite::{rewrite, Edits};
    use sparsetop_engine::gguf::{GgufFile, Value};
    let fixture = GgufFile::open(common::project_file("tests/conformance/llama-spm.gguf")).unwrap();
    let bytes = rewrite(
        &fixture,
        &Edits {
            set: vec![("llama.vocab_size".into(), Value::U32(456))],
            extra_rows: vec![("token_embd.weight".into(), 8), ("output.weight".into(), 8)],
            ..Default::default()
        },
    );
    let dir = tempdir("vocab");
    let path = dir.join("padded.gguf");
    std::fs::write(&path, bytes).unwrap();
    let p = path.display().to_string();
    let (o, _) = run_within(
        &["run", "-m", &p, "-p", "hi", "-n", "1"],
        &[],
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("448 tokens") && err.contains("vocab_size is 456"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sparsetop-cli-args-{what}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
