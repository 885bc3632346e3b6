//! Signals while the UI holds the terminal. Their default actions would kill or stop the process
//! with the terminal raw, on the alternate screen and reporting the mouse, so the event loop
//! catches them and acts itself:
//!
//! - SIGINT, SIGQUIT, SIGTERM, SIGHUP (sent from outside: in raw mode Ctrl+C is a key, not a
//!   signal) end the loop with [`Terminated`]; once the terminal is restored, the engine stopped
//!   and the recording flushed, `main` calls [`exit_as_killed`], so the parent sees the signal
//!   (a shell's `$?` is 128 + its number).
//! - SIGTSTP (and Ctrl+Z in the UI) restores the terminal and stops the process with SIGSTOP: it
//!   cannot re-raise SIGTSTP, whose handler stays installed. SIGCONT (`fg`) takes the terminal
//!   again and redraws everything, also after a plain SIGSTOP, since the shell may have reset the
//!   terminal meanwhile.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// What a signal asks of the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// End, as if killed by this signal.
    Exit(i32),
    /// Give the terminal back and stop (SIGTSTP).
    Suspend,
    /// Continued after a stop (SIGCONT): take the terminal again and redraw.
    Resume,
}

/// The signal streams the event loop listens to. Created before the terminal is taken (inside
/// the runtime), so a signal arriving while it is being set up is not lost.
pub struct Signals {
    int: Signal,
    quit: Signal,
    term: Signal,
    hup: Signal,
    tstp: Signal,
    cont: Signal,
}

impl Signals {
    /// Installs the handlers. Must be called within a tokio runtime.
    pub fn new() -> std::io::Result<Signals> {
        let on = |sig| signal(SignalKind::from_raw(sig));
        Ok(Signals {
            int: on(libc::SIGINT)?,
            quit: on(libc::SIGQUIT)?,
            term: on(libc::SIGTERM)?,
            hup: on(libc::SIGHUP)?,
            tstp: on(libc::SIGTSTP)?,
            cont: on(libc::SIGCONT)?,
        })
    }

    /// Waits for the next signal.
    pub async fn recv(&mut self) -> Asked {
        tokio::select! {
            _ = self.int.recv() => Asked::Exit(libc::SIGINT),
            _ = self.quit.recv() => Asked::Exit(libc::SIGQUIT),
            _ = self.term.recv() => Asked::Exit(libc::SIGTERM),
            _ = self.hup.recv() => Asked::Exit(libc::SIGHUP),
            _ = self.tstp.recv() => Asked::Suspend,
            _ = self.cont.recv() => Asked::Resume,
        }
    }
}

/// The error a UI session ends with when a signal ended it; `main` turns it into
/// [`exit_as_killed`] after everything else has been cleaned up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminated(pub i32);

impl std::fmt::Display for Terminated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ended by signal {}", self.0)
    }
}

impl std::error::Error for Terminated {}

/// Ends the process as the signal's default action would, so the parent sees it (a shell's
/// `$?` is 128 + the number): the handler is reset and the signal raised again. SIGQUIT's default
/// also dumps core, which nobody asked for here: it exits with 128 + 3 instead.
pub fn exit_as_killed(sig: i32) -> ! {
    if sig != libc::SIGQUIT {
        // SAFETY: plain libc calls with valid arguments; no Rust-managed memory is involved.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
    std::process::exit(128 + sig)
}

/// Stops the process (as SIGTSTP's default would) until SIGCONT. The caller has given the
/// terminal back first.
pub fn stop_self() {
    // SAFETY: raising SIGSTOP has no memory effects; the call returns once continued.
    unsafe {
        libc::raise(libc::SIGSTOP);
    }
}
