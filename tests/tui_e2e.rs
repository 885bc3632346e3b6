//! End to end: the real `sparsetop` binary with the real model, in a tmux pane. Types a question,
//! waits for the answer, checks that the answer and a non-zero tokens/s are on screen, stops a long
//! answer with Ctrl+C, quits with a second Ctrl+C and checks the terminal was restored (back in
//! the shell, alternate screen off, raw mode off).
//!
//! tmux is installed with apt-get when missing; the test fails loudly if that is impossible.

mod common;

use common::tmux::{ensure_tmux, Tmux};

use std::path::{Path, PathBuf};
use std::process::Command;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Chat lines of a recording, as JSON values.
fn chat_lines(rec: &Path) -> Vec<serde_json::Value> {
    read(rec)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("chat").cloned())
        .collect()
}

/// The number after `label` on the first screen line that has it.
fn number_after(screen: &str, label: &str) -> Option<f64> {
    screen.lines().find_map(|l| {
        let rest = &l[l.find(label)? + label.len()..];
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The chat column's text with its wrapped lines joined by spaces, so a phrase is found
/// wherever the wrapping breaks it.
fn chat_text(screen: &str) -> String {
    screen
        .lines()
        .filter_map(|l| l.strip_prefix('│'))
        .map(|l| l.split('│').next().unwrap_or("").trim())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn chat_answers_stops_on_ctrl_c_and_restores_the_terminal() {
    ensure_tmux();
    let bin = env!("CARGO_BIN_EXE_sparsetop");
    let model = common::model_path();
    let question = "What is 2+2?";

    // What the same greedy chat turn produces headless: the TUI must show this text.
    let out = Command::new(bin)
        .args(["run", "-m"])
        .arg(&model)
        .args([
            "-p", question, "--chat", "--temp", "0", "-s", "42", "-n", "24", "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = expected["text"].as_str().unwrap().trim().to_string();
    let probe: String = expected.chars().take(24).collect();
    assert!(!probe.is_empty(), "the model gave an empty answer");

    let dir = std::env::temp_dir().join(format!("sparsetop-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec: PathBuf = dir.join("rec.jsonl");
    let stty = dir.join("stty.txt");
    let t = Tmux {
        socket: format!("sparsetop-e2e-{}", std::process::id()),
        session: "e2e".into(),
    };
    t.run(&[
        "new-session",
        "-d",
        "-s",
        "e2e",
        "-x",
        "120",
        "-y",
        "40",
        "sh",
    ]);
    let cmd = format!(
        "{bin} chat -m '{}' --temp 0 -s 42 -c 2048 --record '{}'",
        model.display(),
        rec.display()
    );
    t.type_text(&cmd);
    t.keys(&["Enter"]);
    t.wait("the TUI to be ready", 300, |t| {
        t.screen().contains("ready │")
    });
    assert_eq!(t.display("#{alternate_on}"), "1");

    // A question and its answer.
    t.type_text(question);
    t.keys(&["Enter"]);
    t.wait("the answer to finish", 300, |_| {
        chat_lines(&rec).iter().any(|c| c["kind"] == "done")
    });
    t.wait("the answer on screen", 10, |t| t.screen().contains(&probe));
    let screen = t.screen();
    let decode = number_after(&screen, "decode ").expect("a decode tokens/s figure");
    assert!(decode > 0.0, "decode tok/s is {decode}:\n{screen}");
    assert!(screen.contains("tok/s │"), "status line tok/s:\n{screen}");

    // A long answer, stopped with Ctrl+C once it streams.
    t.type_text("Count from 1 to 1000, separated by commas.");
    t.keys(&["Enter"]);
    t.wait("the long answer to stream", 120, |_| {
        let c = chat_lines(&rec);
        let users = c.iter().filter(|c| c["kind"] == "user").count();
        users == 2 && c.last().is_some_and(|c| c["kind"] == "token")
    });
    t.keys(&["C-c"]);
    t.wait("the answer to stop", 60, |_| {
        chat_lines(&rec)
            .iter()
            .filter(|c| c["kind"] == "done")
            .nth(1)
            .is_some()
    });
    let done = chat_lines(&rec)
        .into_iter()
        .filter(|c| c["kind"] == "done")
        .nth(1)
        .unwrap();
    assert_eq!(done["stop"], "stopped", "{done}");
    t.wait("the stop notice", 10, |t| {
        t.screen().contains("stopped: Ctrl+C again quits")
    });

    // The second Ctrl+C quits, and the terminal is the shell's again.
    t.keys(&["C-c"]);
    t.wait("the app to exit", 60, |t| {
        t.display("#{alternate_on}") == "0" && t.display("#{pane_current_command}") == "sh"
    });
    t.type_text(&format!("stty -a > '{}'", stty.display()));
    t.keys(&["Enter"]);
    t.wait("stty's report", 10, |_| read(&stty).contains("icanon"));
    let modes = read(&stty);
    let words: Vec<&str> = modes.split_whitespace().collect();
    for m in ["icanon", "echo", "isig"] {
        assert!(words.contains(&m), "terminal left with -{m}:\n{modes}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/sparsity 0.5` in a chat started dense: the worker loads the `--profile` given at startup,
/// the sparsity panel's title shows the new settings, and the next answer decodes sparsely, so
/// the heat strip appears.
#[test]
fn sparsity_changes_live() {
    ensure_tmux();
    let bin = env!("CARGO_BIN_EXE_sparsetop");
    let model = common::model_path();
    let dir = std::env::temp_dir().join(format!("sparsetop-e2e-sp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A small profile (a few seconds to make), so the test does not calibrate the full one.
    let profile = dir.join("small.sparsity");
    let out = Command::new(bin)
        .args(["calibrate", "-m"])
        .arg(&model)
        .args(["--tokens", "256", "--rank", "8", "-o"])
        .arg(&profile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = dir.join("rec.jsonl");
    let t = Tmux {
        socket: format!("sparsetop-e2e-sp-{}", std::process::id()),
        session: "e2e".into(),
    };
    t.run(&[
        "new-session",
        "-d",
        "-s",
        "e2e",
        "-x",
        "120",
        "-y",
        "40",
        "sh",
    ]);
    let cmd = format!(
        "{bin} chat -m '{}' --temp 0 -s 42 -c 1024 -n 16 --profile '{}' --record '{}'",
        model.display(),
        profile.display(),
        rec.display()
    );
    t.type_text(&cmd);
    t.keys(&["Enter"]);
    t.wait("the TUI to be ready", 300, |t| {
        t.screen().contains("ready │")
    });
    assert!(t.screen().contains("FFN · sparsity off (dense)"));

    t.type_text("/sparsity 0.5");
    t.keys(&["Enter"]);
    t.wait("the new settings in the panel title", 120, |t| {
        t.screen().contains("FFN · sparsity 0.5 · predictor off")
    });
    let answer = chat_lines(&rec)
        .into_iter()
        .find(|c| c["kind"] == "sparsity")
        .unwrap();
    assert!(answer.get("error").is_none(), "{answer}");

    // An answer decoded sparsely fills the heat strip.
    t.type_text("What is 2+2?");
    t.keys(&["Enter"]);
    t.wait("the answer to finish", 300, |_| {
        chat_lines(&rec).iter().any(|c| c["kind"] == "done")
    });
    t.wait("the heat strip", 10, |t| {
        let s = t.screen();
        s.contains("hot  ") && s.contains("cold ") && s.contains("active")
    });

    // Out of range: an error line, nothing else changes.
    t.type_text("/sparsity 1.5");
    t.keys(&["Enter"]);
    t.wait("the refusal", 10, |t| t.screen().contains("out of range"));
    assert!(t.screen().contains("FFN · sparsity 0.5 · predictor off"));

    t.keys(&["C-c"]);
    t.keys(&["C-c"]);
    t.wait("the app to exit", 60, |t| {
        t.display("#{alternate_on}") == "0"
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// A chat started under `--mem-budget`: the chat tells how the budget is used, `/budget` shows it
/// with its fixed region, `/budget 1M` is refused with the minimum (nothing else changes), `+`
/// in the empty input raises it a step, and the next answer fills the cache, I/O and memory
/// panels against the new budget.
#[test]
fn budget_changes_live() {
    ensure_tmux();
    let bin = env!("CARGO_BIN_EXE_sparsetop");
    let model = common::model_path();
    let dir = std::env::temp_dir().join(format!("sparsetop-e2e-budget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("rec.jsonl");
    let t = Tmux {
        socket: format!("sparsetop-e2e-budget-{}", std::process::id()),
        session: "e2e".into(),
    };
    t.run(&[
        "new-session",
        "-d",
        "-s",
        "e2e",
        "-x",
        "120",
        "-y",
        "40",
        "sh",
    ]);
    let cmd = format!(
        "{bin} chat -m '{}' --temp 0 -s 42 -c 512 -n 8 --mem-budget 80M --record '{}'",
        model.display(),
        rec.display()
    );
    t.type_text(&cmd);
    t.keys(&["Enter"]);
    t.wait("the TUI to be ready", 300, |t| {
        t.screen().contains("ready │")
    });
    t.wait("the budget at startup", 10, |t| {
        chat_text(&t.screen()).contains("memory budget 80.0 MiB: fixed region")
    });
    // The worker's answers to budget requests, from the recording.
    let answers = || -> Vec<serde_json::Value> {
        chat_lines(&rec)
            .into_iter()
            .filter(|c| c["kind"] == "budget" && c["why"] == "request")
            .collect()
    };

    t.type_text("/budget");
    t.keys(&["Enter"]);
    t.wait("/budget's answer", 10, |t| {
        chat_text(&t.screen()).contains("Fixed region:")
    });

    t.type_text("/budget 1M");
    t.keys(&["Enter"]);
    t.wait("the refusal", 60, |_| !answers().is_empty());
    let refusal = answers().remove(0);
    let error = refusal["error"].as_str().expect("an error").to_string();
    let min: u64 = error
        .split("Use /budget ")
        .nth(1)
        .and_then(|r| r.split('M').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no minimum in: {error}"));
    assert!(min > 1 && min <= 80, "{error}");
    assert_eq!(refusal["state"]["budget"], 80u64 << 20, "{refusal}");
    t.wait("the refusal on screen", 10, |t| {
        chat_text(&t.screen()).contains("cannot change the memory budget")
    });

    // `+` in the empty input: a step of 5%.
    t.type_text("+");
    t.wait("the new budget", 60, |_| answers().len() == 2);
    let raised = answers().remove(1);
    assert!(raised.get("error").is_none(), "{raised}");
    assert_eq!(raised["state"]["budget"], 84u64 << 20, "{raised}");
    t.wait("the new budget on screen", 10, |t| {
        chat_text(&t.screen()).contains("now memory budget 84.0 MiB")
    });

    // An answer under the budget fills the panels.
    t.type_text("What is 2+2?");
    t.keys(&["Enter"]);
    t.wait("the answer to finish", 300, |_| {
        chat_lines(&rec).iter().any(|c| c["kind"] == "done")
    });
    t.wait("the panels", 10, |t| {
        let s = t.screen();
        s.contains("of 84.0 MiB budget") && s.contains("hit ") && s.contains("MB/s")
    });

    t.keys(&["C-c"]);
    t.keys(&["C-c"]);
    t.wait("the app to exit", 60, |t| {
        t.display("#{alternate_on}") == "0"
    });
    let _ = std::fs::remove_dir_all(&dir);
}
