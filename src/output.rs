//! Writing to stdout and stderr without ever panicking. `println!` and `eprintln!` panic when the
//! write fails ("failed printing to stderr" with `2>/dev/full`, exit 101, even after a successful
//! run), so the crate forbids them (`clippy::print_stdout`/`print_stderr` in `main.rs`) and writes
//! through here instead:
//!
//! - stdout is the data path: [`stream`] and `outln!` return the error, so a
//!   command whose output cannot be written fails with the normal exit code (1), except a closed
//!   pipe (`sparsetop run ... | head`), which is a normal way to stop (see [`is_broken_pipe`]).
//! - stderr carries diagnostics: `diag!` is best effort. A progress line that cannot
//!   be shown is no reason to fail a run, and there is nowhere else to report it.

use std::io::Write;

/// Writes `s` to stdout and flushes, so streamed tokens appear as they are generated.
pub fn stream(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes `args` and a newline to stderr, ignoring failures (see the module's doc).
pub fn diag_args(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args);
    let _ = err.write_all(b"\n");
}

/// Writes `s` to stderr without a newline (a prompt, a progress line), ignoring failures.
pub fn diag_raw(s: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(s.as_bytes());
    let _ = err.flush();
}

/// `eprintln!` that cannot panic: a diagnostic line on stderr, best effort.
macro_rules! diag {
    () => {
        $crate::output::diag_raw("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::diag_args(format_args!($($arg)*))
    };
}

/// `println!` that cannot panic: a line on stdout, as an `anyhow::Result` to propagate.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::stream(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// Whether an error is stdout's reader having closed the pipe: a normal way to stop, not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
