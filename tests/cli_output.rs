//! Unwritable stdout or stderr (`>/dev/full`, `2>/dev/full`) never makes `sparsetop` panic: a
//! successful run whose diagnostics cannot be shown still exits 0, output that cannot be written
//! fails with the normal exit code (1), and so does an error that cannot be reported.

mod common;

use std::fs::File;
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// `/dev/full`: every write fails with ENOSPC.
fn full() -> Stdio {
    Stdio::from(
        File::options()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full"),
    )
}

fn model() -> String {
    common::model_path().display().to_string()
}

/// Runs sparsetop with stdout or stderr (`which`) on /dev/full, capturing the other one.
fn run_with_full(which: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sparsetop"));
    cmd.args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    match which {
        "stdout" => cmd.stdout(full()).stderr(Stdio::piped()),
        "stderr" => cmd.stdout(Stdio::piped()).stderr(full()),
        _ => unreachable!(),
    };
    let mut child = cmd.spawn().expect("run sparsetop");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    child.wait_with_output().expect("wait for sparsetop")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_successful_run_with_stderr_full_exits_0_with_its_output() {
    let m = model();
    let o = run_with_full(
        "stderr",
        &["run", "-m", &m, "-p", "Hi", "-n", "3", "--temp", "0"],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "stdout: {}", text(&o.stdout));
    assert!(!o.stdout.is_empty(), "the generated text is on stdout");
}

#[test]
fn line_mode_chat_with_stderr_full_answers_and_exits_0() {
    let m = model();
    let o = run_with_full(
        "stderr",
        &["chat", "--plain", "-m", &m, "-n", "3", "--temp", "0"],
        Some("Hi\n"),
    );
    assert_eq!(o.status.code(), Some(0), "stdout: {}", text(&o.stdout));
    assert!(!o.stdout.is_empty(), "the answer is on stdout");
}

#[test]
fn an_error_with_stderr_full_exits_1_not_101() {
    let o = run_with_full(
        "stderr",
        &["run", "-m", "/nonexistent/model.gguf", "-p", "Hi"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn output_that_cannot_be_written_fails_with_1_and_says_why() {
    let m = model();
    for args in [
        vec!["run", "-m", &m, "-p", "Hi", "-n", "3", "--temp", "0"],
        vec!["tokenize", "-m", &m, "-p", "Hi"],
        vec!["inspect", &m],
        // `pull` prints the cached model's path (it is already there: no download).
        vec!["pull"],
    ] {
        let o = run_with_full("stdout", &args, None);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("No space left on device"),
            "{args:?}: stderr should say why: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
