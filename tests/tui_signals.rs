//! The terminal is always given back, in a real tmux pane with the real binary and model:
//! SIGINT, SIGQUIT, SIGTERM and SIGHUP sent from outside restore it (raw mode off, alternate
//! screen left, mouse reporting off, cursor shown) and end the process as the signal would
//! (`$?` is 128 + its number); SIGTSTP and Ctrl+Z give it back and stop, `fg` takes it again and
//! redraws; SIGCONT after a plain SIGSTOP takes it again even if it was reset meanwhile. TABs
//! and escape sequences, pasted or in an answer, are shown expanded or as pictures, never
//! obeyed: nothing spills across the borders.
//!
//! tmux is installed with apt-get when missing; the tests fail loudly if that is impossible.

mod common;

use common::tmux::{ensure_tmux, Tmux};

use std::path::{Path, PathBuf};
use std::process::Command;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A pane running `sh`, and a scratch folder; both removed on drop.
struct Pane {
    t: Tmux,
    dir: PathBuf,
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pane(name: &str) -> Pane {
    ensure_tmux();
    let tag = format!("sparsetop-sig-{name}-{}", std::process::id());
    let dir = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&dir).unwrap();
    let t = Tmux {
        socket: tag,
        session: "sig".into(),
    };
    t.run(&[
        "new-session",
        "-d",
        "-s",
        "sig",
        "-x",
        "120",
        "-y",
        "40",
        "sh",
    ]);
    Pane { t, dir }
}

impl Pane {
    /// Starts `sparsetop ARGS` in the pane (through `exec`, so it is the pane's job and its pid
    /// is known) and waits for the UI; returns its pid.
    fn start(&self, args: &str) -> u32 {
        let bin = env!("CARGO_BIN_EXE_sparsetop");
        let pid_file = self.dir.join("pid");
        self.t.type_text(&format!(
            "sh -c 'echo $$ > {}; exec {bin} {args}'",
            pid_file.display()
        ));
        self.t.keys(&["Enter"]);
        self.t.wait("the UI to be ready", 300, |t| {
            t.screen().contains(" │ ctx ")
        });
        assert_eq!(self.t.display("#{alternate_on}"), "1");
        read(&pid_file).trim().parse().expect("the pid")
    }

    /// A chat with the default model, small and greedy.
    fn start_chat(&self) -> u32 {
        let pid = self.start(&format!(
            "chat -m {} --temp 0 -s 42 -c 256 -n 8",
            common::model_path().display()
        ));
        self.t.wait("ready", 60, |t| t.screen().contains("ready │"));
        // The mouse is reported while the UI runs, so "off" afterwards means something.
        assert_eq!(self.t.display("#{mouse_any_flag}"), "1");
        pid
    }

    /// The pane's terminal modes, from outside (`stty -F`).
    fn stty(&self) -> Vec<String> {
        let tty = self.t.display("#{pane_tty}");
        let out = Command::new("stty")
            .args(["-a", "-F", &tty])
            .output()
            .unwrap();
        assert!(out.status.success(), "stty -F {tty}");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    fn assert_modes(&self, want: &[&str], what: &str) {
        let modes = self.stty();
        for m in want {
            assert!(
                modes.iter().any(|x| x == m),
                "{what}: terminal not {m}: {}\nscreen:\n{}",
                modes.join(" "),
                self.t.screen()
            );
        }
    }

    /// Waits for the shell to have the pane again, then checks the terminal is as the shell
    /// needs it: main screen, cooked mode with echo, no mouse reporting, a visible cursor.
    fn assert_given_back(&self, what: &str) {
        self.t.wait(&format!("the shell after {what}"), 60, |t| {
            t.display("#{alternate_on}") == "0" && t.display("#{pane_current_command}") == "sh"
        });
        assert_eq!(self.t.display("#{mouse_any_flag}"), "0", "{what}: mouse");
        assert_eq!(self.t.display("#{cursor_flag}"), "1", "{what}: cursor");
        self.assert_modes(&["icanon", "echo", "isig"], what);
    }

    /// The exit status the shell saw for the last command.
    fn last_status(&self) -> String {
        let f = self.dir.join("status");
        self.t.type_text(&format!("echo $? > {}", f.display()));
        self.t.keys(&["Enter"]);
        self.t
            .wait("the exit status", 10, |_| read(&f).ends_with('\n'));
        read(&f).trim().to_string()
    }

    /// Takes the UI back with `fg` and checks it is whole again: alternate screen, raw mode,
    /// mouse on, every part redrawn, and typed text lands in the input box.
    fn assert_resumes_with_fg(&self) {
        self.t.type_text("fg");
        self.t.keys(&["Enter"]);
        self.t.wait("the UI again", 30, |t| {
            t.display("#{alternate_on}") == "1" && t.screen().contains("ready │")
        });
        self.t.wait("the mouse again", 10, |t| {
            t.display("#{mouse_any_flag}") == "1"
        });
        self.assert_modes(&["-icanon", "-echo"], "after fg");
        let s = self.t.screen();
        assert!(
            s.contains(" chat ") && s.contains(" message "),
            "redrawn:\n{s}"
        );
        self.t.type_text("hello there");
        self.t.wait("the typed text in the input box", 10, |t| {
            t.screen().lines().any(|l| l.starts_with("│hello there "))
        });
    }
}

/// Sends `sig` with kill(1), as a supervisor or `timeout -s` would.
fn kill(sig: &str, pid: u32) {
    let st = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -s {sig} {pid}");
}

fn exit_signal_restores_the_terminal(sig: &str, status: &str) {
    let p = pane(&sig.to_lowercase());
    let pid = p.start_chat();
    kill(sig, pid);
    p.assert_given_back(sig);
    assert_eq!(p.last_status(), status, "exit status after SIG{sig}");
}

#[test]
fn sigint_restores_the_terminal_and_exits_130() {
    exit_signal_restores_the_terminal("INT", "130");
}

#[test]
fn sigquit_restores_the_terminal_and_exits_131() {
    exit_signal_restores_the_terminal("QUIT", "131");
}

#[test]
fn sigterm_restores_the_terminal_and_exits_143() {
    exit_signal_restores_the_terminal("TERM", "143");
}

#[test]
fn sighup_restores_the_terminal_and_exits_129() {
    exit_signal_restores_the_terminal("HUP", "129");
}

#[test]
fn sigtstp_gives_the_terminal_back_and_fg_redraws() {
    let p = pane("tstp");
    let pid = p.start_chat();
    kill("TSTP", pid);
    p.assert_given_back("SIGTSTP");
    p.assert_resumes_with_fg();
    p.t.keys(&["C-c"]);
    p.t.keys(&["C-c"]);
    p.assert_given_back("Ctrl+C twice");
}

#[test]
fn ctrl_z_suspends_and_fg_resumes() {
    let p = pane("ctrlz");
    p.start_chat();
    p.t.keys(&["C-z"]);
    p.assert_given_back("Ctrl+Z");
    p.assert_resumes_with_fg();
}

/// A plain SIGSTOP cannot be caught, so the terminal stays as the UI left it; if it is reset
/// meanwhile (`stty sane` at the shell's prompt), SIGCONT (`fg`) takes it again.
#[test]
fn sigcont_retakes_a_terminal_reset_while_stopped() {
    let p = pane("cont");
    let pid = p.start_chat();
    kill("STOP", pid);
    p.t.wait("the shell", 30, |t| {
        t.display("#{pane_current_command}") == "sh"
    });
    // The terminal is still raw (no CR to NL): end the line with a newline itself.
    p.t.type_text("stty sane");
    p.t.keys(&["C-j"]);
    p.t.wait("a sane terminal", 10, |_| {
        p.stty().iter().any(|x| x == "icanon")
    });
    p.t.type_text("fg");
    p.t.keys(&["Enter"]);
    p.t.wait("raw mode again", 30, |_| {
        let m = p.stty();
        m.iter().any(|x| x == "-icanon") && m.iter().any(|x| x == "-echo")
    });
    p.t.wait("the UI redrawn", 10, |t| t.screen().contains("ready │"));
    p.t.type_text("hello there");
    p.t.wait("the typed text in the input box", 10, |t| {
        t.screen().lines().any(|l| l.starts_with("│hello there "))
    });
}

/// Positions (in characters) of the vertical borders on a screen line.
fn borders(line: &str) -> Vec<usize> {
    line.chars()
        .enumerate()
        .filter(|(_, c)| *c == '│')
        .map(|(i, _)| i)
        .collect()
}

/// The screen line just under the input box's title.
fn input_row(screen: &str) -> (usize, String) {
    let lines: Vec<&str> = screen.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with("┌ message "))
        .expect("the input box")
        + 1;
    (i, lines[i].to_string())
}

#[test]
fn a_pasted_tab_is_expanded_in_the_input_and_the_chat() {
    let p = pane("tab");
    p.start_chat();
    let (row, before) = input_row(&p.t.screen());
    p.t.run(&["set-buffer", "-b", "tab", "a\tb"]);
    p.t.run(&["paste-buffer", "-p", "-b", "tab", "-t", "sig"]);
    p.t.wait("the paste in the input box", 10, |t| {
        input_row(&t.screen()).1.starts_with("│a   b ")
    });
    let screen = p.t.screen();
    let after = screen.lines().nth(row).unwrap();
    assert_eq!(borders(after), borders(&before), "borders moved:\n{screen}");
    // Sent: the message in the chat shows the TAB expanded too.
    p.t.keys(&["Enter"]);
    p.t.wait("the message in the chat", 30, |t| {
        t.screen().lines().any(|l| l.starts_with("│> a   b "))
    });
}

/// An answer with a TAB, an escape sequence that would clear the screen, a bell and a CR, played
/// from a recording: shown, not obeyed, and the layout holds.
#[test]
fn control_characters_in_an_answer_are_shown_not_obeyed() {
    let p = pane("answer");
    let rec = p.dir.join("rec.jsonl");
    let lines = [
        r#"{"t":0.0,"header":{"model":"m\tx\u001b[31m","sampler":"greedy","n_ctx":256}}"#,
        r#"{"t":0.01,"chat":{"kind":"user","text":"hi"}}"#,
        r#"{"t":0.02,"chat":{"kind":"token","text":"x\ty\u001b[2J\u0007z\r!"}}"#,
        r#"{"t":0.03,"chat":{"kind":"done","prompt_tokens":1,"prompt_tok_s":1.0,"generated":1,"gen_tok_s":1.0,"ctx_used":2,"stop":"end"}}"#,
    ];
    std::fs::write(&rec, lines.join("\n") + "\n").unwrap();
    p.start(&format!("replay {}", rec.display()));
    p.t.wait("the answer", 30, |t| t.screen().contains("replay done"));
    let screen = p.t.screen();
    assert!(
        screen.lines().any(|l| l.starts_with("│x   y␛[2J␇z␍! ")),
        "the answer as pictures:\n{screen}"
    );
    assert!(
        screen.contains(" m   x␛[31m │ "),
        "the model name:\n{screen}"
    );
    // Every line of the chat column has its borders where the first one does.
    let top = borders(screen.lines().nth(1).unwrap());
    for l in screen.lines().skip(1).take(10) {
        assert_eq!(borders(l)[..2], top[..2], "borders moved:\n{screen}");
    }
    p.t.keys(&["C-c"]);
    p.t.keys(&["C-c"]);
    p.assert_given_back("quit");
}
