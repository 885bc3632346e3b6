//! Flash offload: running a model whose FFN weights do not fit the memory budget.
//!
//! Attention, norms and embeddings stay resident (they are read in full for every token), while
//! the FFN — most of a model's bytes, and with activation sparsity only partly read per token — is
//! read on demand: whole layers from the model file ([`stream`], dense prefill and decode), or
//! neurons from a file laid out for it, the neuron bundle ([`bundle`]), where each neuron's gate
//! row, up row and down column are stored side by side and neurons are sorted hot-first.
//!
//! The compute side keeps the hot neurons resident and, per layer, asks for the cold records it
//! needs; [`io::IoEngine`] fills them. Reads bypass the page cache (`O_DIRECT`) because the process
//! runs under a memory limit that counts page cache: a cache that silently grows with every cold
//! neuron read would get the process killed, and the engine already caches what is worth caching.
//!
//! Unix only: the I/O engine is built on `pread`, `O_DIRECT` / `F_NOCACHE` and `posix_fadvise`.

pub mod budget;
pub mod bundle;
pub mod cache;
pub mod cluster_check;
#[cfg(unix)]
pub mod io;
#[cfg(unix)]
pub mod neurons;
#[cfg(unix)]
pub mod stream;

use std::path::Path;

/// Drops a file's clean pages from the page cache (best effort): under a memory limit that counts
/// the page cache, pages of weights the engine holds elsewhere must not linger.
pub fn evict_from_page_cache(path: &Path) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let Ok(f) = std::fs::File::open(path) {
            // SAFETY: a valid open descriptor; the call only advises the kernel.
            unsafe {
                libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = path;
}
