//! Writing files without ever losing one: every file sparsetop writes (neuron bundles, sparsity
//! profiles, the downloaded model, recordings, transcripts) goes through here.
//!
//! The rules, and why:
//! - **A target that is one of the inputs is refused** (same device and inode, so a symlink or a
//!   hard link to the model is caught as well as the model's own path): `convert -m m.gguf -o
//!   m.gguf` once replaced the model by its bundle.
//! - **A target that exists and is not a regular file is refused** (directory, device node, FIFO,
//!   socket): renaming over `/dev/full` replaced the device node with a 47 MB file.
//! - **Whole files are written to a unique temporary file in the target's folder**, synced, then
//!   renamed over the target and the folder synced ([`AtomicFile`]): a reader (or a crash) sees
//!   the old file or the new one, never a mix, and a process that has the old one mapped keeps
//!   its pages. The temporary name is unique per process and call (`.NAME.tmp-PID-N`, created
//!   with `O_EXCL`), so two writers never share one; it is removed on every failure path,
//!   including an unwinding panic (by `Drop`).
//! - **Writers of one target take turns** ([`TargetLock`]): an advisory lock on `.NAME.lock` next
//!   to the target, removed when released. Two `convert`s of one model once mixed the header of
//!   one profile's bundle with the data of the other.
//! - **[`check_target`] runs the same checks up front**, cheaply, so a command refuses a bad
//!   output path before a minute-long calibration rather than after it.
//!
//! Logs that grow as the program runs (recordings) are the one exception to the rename: see
//! [`in_place`] for why, and for how they keep the same guarantees.

pub mod atomic;
pub mod in_place;
pub mod lock;
pub mod target;

pub use atomic::{write_atomic, AtomicFile};
pub use in_place::InPlaceFile;
pub use lock::{Busy, TargetLock};
pub use target::check_target;

/// The folder holding `path` (`.` for a bare file name).
pub(crate) fn folder_of(path: &std::path::Path) -> &std::path::Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    }
}
