//! A log written in place as the program runs (a chat's `--record` file).
//!
//! Why not a temporary file renamed at the end, as [`super::AtomicFile`] does: a recording is
//! worth most when the program does not get to its end. A chat killed by the system, a crash or a
//! power cut would leave the recording under a hidden temporary name (or not at all), where the
//! user looks for it at the path they gave; written in place, everything up to the last flush is
//! there, line by line. The guarantees that matter are kept: the path is checked as any output
//! is ([`super::check_target`]); the file is opened without truncating, without following a
//! symbolic link put there meanwhile and without blocking on a FIFO, and checked again through
//! the open descriptor (a regular file, not an input) before it is emptied, so a device, a pipe
//! or an input is never touched; and the target's [`TargetLock`] is held until the log is
//! closed, so two writers never interleave their lines. The one difference: a file already at
//! that path is replaced when the log starts, not when it ends, which is what naming it asked for.

use super::folder_of;
use super::lock::{Busy, TargetLock};
use super::target::{check_existing, check_target};
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An open log file and the lock of its path.
pub struct InPlaceFile {
    path: PathBuf,
    file: File,
    _lock: TargetLock,
}

impl InPlaceFile {
    /// Opens (creating or emptying) the log at `target`, after the checks above.
    pub fn create(target: &Path, inputs: &[&Path], busy: Busy) -> Result<InPlaceFile> {
        let resolved = check_target(target, inputs)?;
        let folder = folder_of(&resolved);
        std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
        let lock = TargetLock::acquire(&resolved, busy)?;
        let io = |e| Error::io(&resolved, e);
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        }
        let file = opts.open(&resolved).map_err(io)?;
        let m = file.metadata().map_err(io)?;
        check_existing(&resolved, &m, inputs)?;
        file.set_len(0).map_err(io)?;
        Ok(InPlaceFile {
            path: resolved,
            file,
            _lock: lock,
        })
    }

    /// The path written (a symbolic link's destination, not the link).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Write for InPlaceFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
