//! The `sparsetop` binary as a user runs it: outputs, JSON shapes and error messages.

mod common;

use serde_json::Value;
use std::process::{Command, Output};

fn sparsetop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsetop"))
        .args(args)
        .output()
        .expect("run sparsetop")
}

fn model() -> String {
    common::model_path().display().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failed run with a clear message and no panic or backtrace.
fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(!err.contains("RUST_BACKTRACE"), "backtrace hint: {err}");
}

#[test]
fn run_json_reproduces_exact_greedy_until_end_of_generation() {
    let golden = common::golden("greedy_f32ref.json");
    let case = &golden["cases"][0];
    let prompt = case["prompt_text"].as_str().unwrap();
    let m = model();
    let o = sparsetop(&[
        "run",
        "-m",
        &m,
        "-p",
        prompt,
        "-n",
        "48",
        "--temp",
        "0",
        "--precision",
        "exact",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("stdout is one JSON object");
    assert_eq!(
        common::ids(&v["prompt_ids"]),
        common::ids(&case["prompt_ids"])
    );
    let want = common::ids(&case["generated_ids"]);
    let eog = case["first_eog_index"].as_i64().unwrap();
    let want = if eog >= 0 {
        &want[..eog as usize]
    } else {
        &want[..]
    };
    assert_eq!(common::ids(&v["generated_ids"]), want);
    assert_eq!(
        v["text"].as_str().unwrap(),
        case["generated_text_until_eog"].as_str().unwrap()
    );
    assert!(v["prompt_tok_s"].as_f64().unwrap() > 0.0);
    assert!(v["gen_tok_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn run_chat_uses_the_gguf_template() {
    let golden = common::golden("greedy.json");
    let case = golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "chat")
        .unwrap();
    let m = model();
    let user = case["user_message"].as_str().unwrap();
    let o = sparsetop(&[
        "run", "-m", &m, "-p", user, "--chat", "-n", "4", "--temp", "0", "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        common::ids(&v["prompt_ids"]),
        common::ids(&case["prompt_ids"])
    );
    assert_eq!(common::ids(&v["generated_ids"]).len(), 4);
}

#[test]
fn run_streams_text() {
    let m = model();
    let o = sparsetop(&[
        "run",
        "-m",
        &m,
        "-p",
        "The capital of France is",
        "-n",
        "3",
        "--temp",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(" Paris"));
    assert!(stderr(&o).contains("tok/s"));
}

#[test]
fn tokenize_prints_ids() {
    let golden = common::golden("tokenize.json");
    let m = model();
    for case in golden["cases"].as_array().unwrap().iter().take(5) {
        let text = case["text"].as_str().unwrap();
        let o = sparsetop(&["tokenize", "-m", &m, "-p", text]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(common::ids(&v), common::ids(&case["ids"]), "{text:?}");
        let o = sparsetop(&["tokenize", "-m", &m, "-p", text, "--no-parse-special"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            common::ids(&v),
            common::ids(&case["ids_no_parse_special"]),
            "{text:?}"
        );
    }
}

#[test]
fn inspect_describes_the_model() {
    let m = model();
    let o = sparsetop(&["inspect", &m]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "architecture:  llama",
        "layers:        30",
        "Q4_1",
        "Q8_0",
        "smollm",
        "heads:         9 query, 3 key/value",
    ] {
        assert!(out.contains(want), "inspect output lacks {want:?}:\n{out}");
    }
}

#[test]
fn perplexity_json() {
    let m = model();
    let f = common::project_file("assets/GPL-3.txt");
    let o = sparsetop(&[
        "perplexity",
        "-m",
        &m,
        "-f",
        f.to_str().unwrap(),
        "-c",
        "128",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["chunks"], 59);
    let ppl = v["ppl"].as_f64().unwrap();
    assert!((ppl / 24.23 - 1.0).abs() < 0.01, "ppl {ppl}");
}

#[test]
fn missing_model_is_a_clear_error() {
    let o = sparsetop(&["run", "-m", "/nonexistent/model.gguf", "-p", "hi"]);
    assert_clean_failure(&o, "not found");
}

#[test]
fn corrupt_model_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("sparsetop-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.gguf");
    std::fs::write(&bad, b"GGUX\x03\x00\x00\x00 this is not a model").unwrap();
    let o = sparsetop(&["run", "-m", bad.to_str().unwrap(), "-p", "hi"]);
    assert_clean_failure(&o, "bad magic");
    // A real model cut short: tensor data past the end of the file.
    let real = std::fs::read(common::model_path()).unwrap();
    let cut = dir.join("cut.gguf");
    std::fs::write(&cut, &real[..real.len() / 2]).unwrap();
    let o = sparsetop(&["inspect", cut.to_str().unwrap()]);
    assert_clean_failure(&o, "past the end of the file");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn prompt_longer_than_context_is_a_clear_error() {
    let m = model();
    let long = "word ".repeat(200);
    let o = sparsetop(&["run", "-m", &m, "-c", "64", "-p", &long, "-n", "4"]);
    assert_clean_failure(&o, "context holds 64");
}

#[test]
fn bad_flags_are_clear_errors() {
    let m = model();
    let o = sparsetop(&["run", "-m", &m, "-p", "x", "--precision", "fastest"]);
    assert_clean_failure(&o, "precision");
    let o = sparsetop(&["run", "-m", &m, "-p", "x", "--top-p", "2"]);
    assert_clean_failure(&o, "--top-p");
    let o = sparsetop(&["run", "-m", &m]);
    assert_clean_failure(&o, "no prompt");
}

/// A fresh scratch folder `name` holding a copy of a tiny fixture model, so that what sparsetop
/// writes next to a model (profile, bundle) stays out of the fixtures: the folder and the copy's
/// path.
fn scratch_tiny_model(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let m = dir.join("tiny.gguf");
    std::fs::copy(
        common::project_file("tests/conformance/llama-linear.gguf"),
        &m,
    )
    .unwrap();
    let m = m.display().to_string();
    (dir, m)
}

#[test]
fn convert_writes_checks_and_rewrites_a_neuron_bundle() {
    // The profile calibrated on the way and the bundle land next to the scratch copy.
    let (dir, m) = scratch_tiny_model("cli_convert");
    let bundle = format!("{m}.bundle");
    let o = sparsetop(&["convert", "-m", &m, "-t", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().next(), Some(bundle.as_str()), "{out}");
    assert!(
        out.contains("1 × 512 neurons") && out.contains("6 per 4096-byte cluster"),
        "{out}"
    );
    assert!(out.contains("written in"), "{out}");
    assert!(stderr(&o).contains("calibrating"), "{}", stderr(&o));
    assert!(std::path::Path::new(&format!("{m}.sparsity")).is_file());
    let o = sparsetop(&["convert", "-m", &m]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("up to date, checked"));
    let o = sparsetop(&["convert", "-m", &m, "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("written in"));
    // A damaged data byte: found by the check, and the file is rebuilt.
    let mut b = std::fs::read(&bundle).unwrap();
    let last = b.len() - 4096;
    b[last] ^= 1;
    std::fs::write(&bundle, &b).unwrap();
    let o = sparsetop(&["convert", "-m", &m]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("is corrupt"), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("written in"));
    let other = dir.join("other.bundle").display().to_string();
    let o = sparsetop(&["convert", "-m", &m, "-o", &other]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&other).unwrap(),
        std::fs::read(&bundle).unwrap()
    );
}

#[test]
fn a_first_sparse_run_under_a_budget_makes_its_profile_and_bundle_first() {
    // Neither file exists yet: a child `sparsetop convert` makes them (its report on stderr), then
    // the run goes on, its stdout only its own JSON; the next run finds both.
    let (_, m) = scratch_tiny_model("cli_budget_first_run");
    let args = [
        "bench",
        "-m",
        &m,
        "-t",
        "2",
        "-p",
        "0",
        "-n",
        "4",
        "-r",
        "1",
        "--sparsity",
        "0.5",
        "--mem-budget",
        "64M",
        "--json",
    ];
    let o = sparsetop(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("calibrating"), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is the JSON");
    assert!(rows[0]["offload"].is_object(), "{rows}");
    assert!(std::path::Path::new(&format!("{m}.sparsity")).is_file());
    assert!(std::path::Path::new(&format!("{m}.bundle")).is_file());
    let o = sparsetop(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("calibrating"), "{}", stderr(&o));
}

#[test]
fn convert_refuses_a_model_it_cannot_bundle() {
    // This fixture's gate and up change type from layer 0 to layer 1: refused before any
    // calibration (nothing is written next to the committed fixture).
    let m = common::project_file("tests/conformance/llama-spm.gguf");
    let o = sparsetop(&["convert", "-m", &m.display().to_string()]);
    assert_clean_failure(
        &o,
        "cannot make a neuron bundle: layer 1's ffn_gate is Q5_K",
    );
    assert!(!common::project_file("tests/conformance/llama-spm.gguf.sparsity").exists());
}

#[test]
fn bench_vs_dense_pairs_sparse_and_dense_repetitions() {
    // Its profile is calibrated on the way, next to the scratch copy.
    let (_, m) = scratch_tiny_model("cli_vs_dense");
    let args = [
        "bench", "-m", &m, "-t", "2", "-p", "0", "-n", "4", "-r", "3",
    ];
    let o = sparsetop(&[&args[..], &["--sparsity", "0.5", "--vs-dense", "--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let pair = &v[0]["vs_dense"];
    let dense = pair["dense_samples"].as_array().unwrap();
    let ratios = pair["ratios"].as_array().unwrap();
    assert_eq!((dense.len(), ratios.len()), (3, 3), "{pair}");
    let sparse = v[0]["samples"].as_array().unwrap();
    for ((r, s), d) in ratios.iter().zip(sparse).zip(dense) {
        let want = s.as_f64().unwrap() / d.as_f64().unwrap();
        assert!((r.as_f64().unwrap() - want).abs() < 1e-9, "{pair}");
    }
    let mut sorted: Vec<f64> = ratios.iter().map(|r| r.as_f64().unwrap()).collect();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(pair["median_ratio"].as_f64().unwrap(), sorted[1]);
    // Only sparse decode in memory has a dense counterpart to pair with.
    let o = sparsetop(&[&args[..], &["--vs-dense"]].concat());
    assert_clean_failure(&o, "set --sparsity above 0");
    let o = sparsetop(
        &[
            &args[..],
            &["--sparsity", "0.5", "--vs-dense", "--mem-budget", "1G"],
        ]
        .concat(),
    );
    assert_clean_failure(&o, "under --mem-budget");
}
