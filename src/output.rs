//! Writing to stdout without panicking when the reader goes away (`sparsetop run ... | head`).

use std::io::Write;

/// Writes `s` to stdout and flushes, so streamed tokens appear as they are generated.
pub fn stream(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Whether an error is stdout's reader having closed the pipe: a normal way to stop, not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
