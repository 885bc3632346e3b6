//! A tmux server of a test's own, to drive the real binary in a terminal: keys in, screen out.
//! tmux is installed with apt-get when missing; the tests fail loudly if that is impossible.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A tmux server on its own socket, so tests never touch the user's sessions; killed on drop.
pub struct Tmux {
    pub socket: String,
    /// The session every command addresses (`-t`).
    pub session: String,
}

impl Tmux {
    pub fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(
            &self
                .run(&["capture-pane", "-p", "-t", &self.session])
                .stdout,
        )
        .into_owned()
    }

    pub fn display(&self, fmt: &str) -> String {
        String::from_utf8_lossy(
            &self
                .run(&["display", "-p", "-t", &self.session, fmt])
                .stdout,
        )
        .trim()
        .to_string()
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    pub fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", &self.session, "-l", text]);
    }

    /// Waits until `ok` holds, failing with `what` and the current screen after `secs`.
    pub fn wait(&self, what: &str, secs: u64, mut ok: impl FnMut(&Tmux) -> bool) {
        let t0 = Instant::now();
        while !ok(self) {
            if t0.elapsed() > Duration::from_secs(secs) {
                panic!(
                    "timed out after {secs} s waiting for {what}; screen:\n{}",
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

pub fn ensure_tmux() {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return;
    }
    eprintln!("tmux is not installed: installing it with apt-get");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "tmux"])
            .status()
            .is_ok_and(|s| s.success())
    };
    let ok = install()
        || (Command::new("apt-get")
            .args(["update", "-q"])
            .status()
            .is_ok_and(|s| s.success())
            && install());
    assert!(
        ok && Command::new("tmux").arg("-V").output().is_ok(),
        "this test needs tmux and `apt-get install -y tmux` failed: install tmux and run it again"
    );
}
