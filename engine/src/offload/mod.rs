//! Flash offload: FFN neurons that do not fit in RAM stay in a bundle file on flash and are read on
//! demand.
//!
//! The compute side keeps the hot neurons resident and, per layer, asks for the cold records it
//! needs; [`io::IoEngine`] fills them. Reads bypass the page cache (`O_DIRECT`) because the process
//! runs under a memory limit that counts page cache: a cache that silently grows with every cold
//! neuron read would get the process killed, and the engine already caches what is worth caching.
//!
//! Unix only: the I/O engine is built on `pread`, `O_DIRECT` / `F_NOCACHE` and `posix_fadvise`.

#[cfg(unix)]
pub mod io;
