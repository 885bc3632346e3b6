//! The I/O engine behind flash offload: reads neuron records from the bundle file into caller-owned
//! memory on a few reader threads, without filling the page cache.
//!
//! # Why it looks like this
//!
//! * **Page cache.** The process runs under a hard memory limit that counts page cache, and the
//!   compute side caches the neurons worth caching itself. So the file is opened with `O_DIRECT`
//!   (`F_NOCACHE` on Apple systems). Where a file system refuses it (`EINVAL` at open, or at the
//!   first read on some file systems), the engine falls back to buffered reads, turns readahead
//!   off (`POSIX_FADV_RANDOM`: readahead would pull neighbouring pages nobody asked for into the
//!   cache) and drops every range it read with `POSIX_FADV_DONTNEED` right after copying it out.
//! * **Queue depth.** Flash serves one random 4 KiB read in ~60 µs but many at once in about the
//!   same time each (measured on the dev VM: 68 MB/s at queue depth 1, 270 MB/s at 16), so several
//!   reader threads ([`IoConfig::readers`]) issue blocking `pread`s concurrently. Plain threads
//!   rather than io_uring keep it portable to Android and macOS and need no extra dependency.
//! * **Merging.** Larger reads are far cheaper per byte (~900 MB/s at 64 KiB, 1–1.4 GB/s from
//!   256 KiB), and `O_DIRECT` reads whole aligned blocks anyway. [`IoEngine::submit`] takes a whole
//!   batch, sorts it by offset and serves requests whose aligned ranges overlap (two ~1.3 KB
//!   records in one 4 KiB page) or lie within [`IoConfig::merge_gap`] bytes of each other with
//!   one read of at most [`IoConfig::max_read`] bytes.
//! * **Priority.** Demand reads (a compute thread will block on them for this token) are merged
//!   only with demand reads, so a demand request never waits for a large speculative read, and go
//!   to a queue that readers always drain before the prefetch queue. A prefetch request whose
//!   aligned range lies inside a demand read rides along with it for free.
//! * **Bounce buffers.** Each reader owns one page-aligned buffer of `max_read` bytes, allocated at
//!   start, reads into it and copies each request's bytes to its destination. Destinations need
//!   no alignment, and requests that share a page are served by one read.
//! * **No allocation per request.** Requests move through a bounded queue reserved at start:
//!   each class keeps its queued requests in one ring, in the order of its reads, and a reader
//!   moves a read's requests into a list of its own when it takes the read. Both are sized for
//!   [`IoConfig::queue_capacity`] requests up front, and [`IoEngine::submit`] blocks while the
//!   queue holds that many requests of the same class (demand or prefetch), so no read of at
//!   most that many requests allocates, however the reads in flight are sized.
//! * **Completions.** Each request has a [`Completion`], a 32-bit atomic the caller owns (an
//!   array of them per layer, typically). Readers set it with `Release` after copying, waiters
//!   read it with `Acquire`, so the copied bytes are visible once it reads done. A waiter spins
//!   briefly, then sleeps on a futex (Linux, Android) so a stalled read costs no CPU the readers
//!   might need; readers make a wake-up system call only when someone sleeps.
//! * **Checks.** With [`IoConfig::check`] (the neuron bundle's cluster CRCs), every request is
//!   widened to the whole clusters it lies in, and a reader checks each of those clusters' CRC
//!   in its bounce buffer before copying anything out: a request whose cluster does not match
//!   fails with a message naming the layer and the cluster, and its destination is never given
//!   to compute. The check runs here, on the reader threads, so the compute threads never pay
//!   for it (see [`super::cluster_check`]).
//! * **Failures.** An I/O error or a short read (the file was truncated while in use, or a request
//!   lies past its end: never zero-filled) fails every request of that read with a message naming
//!   the offset, the length and the OS error; the engine keeps serving later requests. Dropping
//!   the engine fails the requests still queued, so no waiter hangs.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use super::cluster_check::ClusterCheck;
use crate::{Error, Result};

/// Alignment of every read's offset, length and buffer. `O_DIRECT` needs the device's logical block
/// size (512 bytes on the dev VM); 4 KiB covers every device in use, phones' UFS included.
pub const ALIGN: usize = 4096;
const ALIGN_U64: u64 = ALIGN as u64;

/// The largest file offset `pread` accepts (`off_t` is signed).
const MAX_OFFSET: u64 = i64::MAX as u64;

/// Most reader threads [`IoEngine::open`] accepts: beyond this, threads cost more than they add.
pub const MAX_READERS: usize = 256;

/// Largest [`IoConfig::queue_capacity`]: the queue is reserved up front.
pub const MAX_QUEUE: usize = 1 << 20;

/// How many failure messages [`IoEngine::failure`] can still look up; the first one is kept forever.
const RECENT_ERRORS: usize = 64;

// ---------------------------------------------------------------------------------------------
// Completion
// ---------------------------------------------------------------------------------------------

const PENDING: u32 = 0;
const DONE: u32 = 1;
/// `FAILED_BASE + id` marks a failure whose message is error `id` of the engine's log.
const FAILED_BASE: u32 = 2;
/// Set by a waiter about to sleep, so the reader knows to wake it.
const WAITERS: u32 = 1 << 31;
const VALUE: u32 = !WAITERS;
/// The failure id of requests still queued when the engine was dropped.
const SHUTDOWN_ID: u32 = 0;
/// Largest failure id; ids wrap around to 1 after it (only the recent ones are looked up anyway).
const MAX_ERROR_ID: u32 = VALUE - FAILED_BASE;

/// Spins, then yields, before a waiter sleeps: a read takes tens of microseconds at least, so a
/// waiter that finds it not done will usually have to sleep anyway.
const WAIT_SPINS: u32 = 256;
const WAIT_YIELDS: u32 = 8;

/// What a [`Completion`] says about its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionState {
    /// Submitted (or never submitted) and not finished.
    Pending,
    /// The destination holds the requested bytes.
    Done,
    /// The read failed; the destination holds unspecified bytes.
    Failed,
}

/// The completion flag of one [`ReadRequest`]: pending, done or failed.
///
/// The caller owns it (typically in an array next to the destination slots) and must keep it
/// alive, at the same address, until it is no longer pending. One completion per request.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Completion(AtomicU32);

impl Completion {
    /// A pending completion.
    pub const fn new() -> Self {
        Completion(AtomicU32::new(PENDING))
    }

    /// The current state (`Acquire`: after `Done`, the destination's bytes are visible).
    pub fn state(&self) -> CompletionState {
        match self.0.load(Ordering::Acquire) & VALUE {
            PENDING => CompletionState::Pending,
            DONE => CompletionState::Done,
            _ => CompletionState::Failed,
        }
    }

    /// Whether the request finished successfully (`Acquire`, as [`Completion::state`]).
    pub fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire) & VALUE == DONE
    }

    /// Back to pending. [`IoEngine::submit`] does this itself; this is for callers that track
    /// their own slots. Must not be called while a submitted request still uses this completion.
    pub fn reset(&self) {
        self.0.store(PENDING, Ordering::Relaxed);
    }

    /// Blocks until the request finishes: spins briefly, then sleeps until the reader wakes it.
    ///
    /// `Err` carries a handle to the failure's message: [`IoEngine::failure`] turns it into an
    /// error, and [`IoEngine::wait`] does both.
    pub fn wait(&self) -> std::result::Result<(), ReadFailed> {
        let mut tries = 0u32;
        loop {
            let state = self.0.load(Ordering::Acquire);
            match state & VALUE {
                PENDING => {}
                DONE => return Ok(()),
                failed => return Err(ReadFailed(failed - FAILED_BASE)),
            }
            if tries < WAIT_SPINS {
                std::hint::spin_loop();
            } else if tries < WAIT_SPINS + WAIT_YIELDS {
                std::thread::yield_now();
            } else {
                self.sleep(state);
            }
            tries = tries.saturating_add(1);
        }
    }

    /// Sleeps until woken (or spuriously) while the state is still `state` (pending).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn sleep(&self, state: u32) {
        let waiting = state | WAITERS;
        if state != waiting
            && self
                .0
                .compare_exchange(state, waiting, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return; // Finished (or another waiter flagged it) meanwhile: look again.
        }
        // SAFETY: FUTEX_WAIT only reads the word, which `self` keeps alive; it returns at once if
        // the word is no longer `waiting`, so a completion between the flag and the call is seen.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.0.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                waiting,
                std::ptr::null::<libc::timespec>(),
            );
        }
    }

    /// Without futexes: poll at a rate well below a read's latency.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn sleep(&self, _state: u32) {
        std::thread::sleep(std::time::Duration::from_micros(20));
    }

    /// Publishes the outcome `value` (`DONE` or a failure) and wakes sleeping waiters.
    ///
    /// # Safety
    /// `this` points to a live completion. It may be freed by a waiter as soon as the store
    /// lands, so it is not dereferenced after that (the wake-up only passes the address to the
    /// kernel, which ignores addresses nobody waits on).
    unsafe fn finish(this: *const Completion, value: u32) {
        // SAFETY: live until the swap, by the caller's contract.
        let old = unsafe { (*this).0.swap(value, Ordering::Release) };
        if old & WAITERS != 0 {
            wake_all(this.cast::<u32>());
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn wake_all(addr: *const u32) {
    // SAFETY: FUTEX_WAKE does not access the memory; a stale address wakes nobody (or causes a
    // spurious wake-up, which every waiter tolerates).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr,
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn wake_all(_addr: *const u32) {}

/// A failed request, as [`Completion::wait`] reports it: [`IoEngine::failure`] has its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadFailed(u32);

impl ReadFailed {
    /// The request was still queued when the engine was dropped: no read was attempted.
    pub fn is_shutdown(self) -> bool {
        self.0 == SHUTDOWN_ID
    }
}

impl fmt::Display for ReadFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_shutdown() {
            f.write_str("the offload I/O engine shut down before this read was done")
        } else {
            write!(f, "offload read failed (I/O error #{})", self.0)
        }
    }
}

impl std::error::Error for ReadFailed {}

// ---------------------------------------------------------------------------------------------
// Requests, configuration, statistics
// ---------------------------------------------------------------------------------------------

/// One read: copy `len` bytes at file `offset` into `dest`, then mark `done`.
///
/// Plain pointers because the destination is a slot of the caller's cache and the completion is
/// the caller's too; [`IoEngine::submit`] states what they must satisfy.
#[derive(Clone, Copy, Debug)]
pub struct ReadRequest {
    /// Byte offset in the file; any alignment.
    pub offset: u64,
    /// Bytes to read; any size (0 completes at once). Reading past the end of the file fails.
    pub len: u32,
    /// Where the bytes go; any alignment.
    pub dest: *mut u8,
    /// Set to done or failed when the request finishes.
    pub done: *const Completion,
    /// Speculative: served after every demand request queued before it is taken.
    pub prefetch: bool,
}

/// Test-only fault injection (hidden from the docs, stable enough for the engine's own tests).
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// `pread` calls whose sequence number (0 for the engine's first) is in this range fail with
    /// an injected error instead of reading.
    pub fail_reads: Range<u64>,
    /// `pread` calls, numbered as above, that panic instead (a bug in a reader).
    pub panic_reads: Range<u64>,
    /// Act as if opening with `O_DIRECT` returned `EINVAL` (file systems without direct I/O).
    pub refuse_direct_at_open: bool,
    /// Act as if every direct read returned `EINVAL` (file systems that accept `O_DIRECT` at
    /// open but refuse the reads), until the engine falls back to buffered reads.
    pub refuse_direct_at_read: bool,
}

/// How [`IoEngine::open`] sets the engine up.
#[derive(Clone, Debug)]
pub struct IoConfig {
    /// Reader threads, i.e. the most reads in flight at once (1 to [`MAX_READERS`]). Flash wants a
    /// deep queue; each reader also costs a `max_read` buffer. Default 4.
    pub readers: usize,
    /// Most demand requests, and most prefetch requests, waiting in the queue: [`IoEngine::submit`]
    /// blocks beyond it. Separate so that queued prefetch never holds up a demand submit.
    /// 1 to [`MAX_QUEUE`]; default 512.
    pub queue_capacity: usize,
    /// Try to bypass the page cache (`O_DIRECT`, `F_NOCACHE`). Default true.
    pub direct: bool,
    /// Requests whose aligned ranges are at most this many bytes apart are served by one read (the
    /// gap is read and discarded). Reading a page (~4 µs at 1 GB/s) is cheaper than another read's
    /// share of a 4K random-read queue (~15 µs at 270 MB/s), so default 4096. Requests in the same
    /// page are always served by one read.
    pub merge_gap: u64,
    /// Largest single read in bytes, a multiple of [`ALIGN`] (rounded up). Past ~256 KiB reads get
    /// no cheaper per byte, and a bigger read delays the requests queued behind it. Default 256 KiB.
    /// With [`IoConfig::check`], rounded down to whole clusters (up to one cluster if smaller).
    pub max_read: usize,
    /// Check every byte handed out against the file's cluster CRCs (the neuron bundle's): requests
    /// must then lie in the checked data section, and are read as whole clusters. `None` (the
    /// default) reads unchecked, as for the model file, which has no checksums.
    pub check: Option<Arc<ClusterCheck>>,
    #[doc(hidden)]
    pub faults: Faults,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            readers: 4,
            queue_capacity: 512,
            direct: true,
            merge_gap: 4096,
            max_read: 256 << 10,
            check: None,
            faults: Faults::default(),
        }
    }
}

/// A snapshot of the engine's counters, all since open (except the two gauges).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Requests queued and not yet taken by a reader (gauge).
    pub queue_depth: u32,
    /// Reads being performed right now (gauge).
    pub in_flight: u32,
    /// `pread`s issued: one per merged read, or per `max_read` piece of a larger one.
    pub reads: u64,
    /// Bytes those reads returned, alignment padding and merge gaps included.
    pub bytes_read: u64,
    /// Requests submitted.
    pub requests: u64,
    /// Of those, prefetch requests.
    pub prefetch_requests: u64,
    /// Requests that shared a read with another request (a read serving n requests adds n - 1).
    pub merged: u64,
    /// Time from submit to completion, summed over finished requests, in microseconds.
    pub latency_us_sum: u64,
    /// Time spent inside `pread`, summed over reads, in microseconds.
    pub read_us_sum: u64,
    /// Failed reads (each recorded with its message; see [`IoEngine::first_error`]).
    pub errors: u64,
    /// Requests that finished failed (their read failed, they were invalid, or the engine shut
    /// down before reading them).
    pub failed_requests: u64,
}

#[derive(Default)]
struct Counters {
    queue_depth: AtomicU32,
    in_flight: AtomicU32,
    reads: AtomicU64,
    bytes_read: AtomicU64,
    requests: AtomicU64,
    prefetch_requests: AtomicU64,
    merged: AtomicU64,
    latency_us_sum: AtomicU64,
    read_us_sum: AtomicU64,
    errors: AtomicU64,
    failed_requests: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// Internals: jobs, reads, queue
// ---------------------------------------------------------------------------------------------

/// A validated request on its way to a reader.
#[derive(Clone, Copy)]
struct Job {
    offset: u64,
    len: u32,
    dest: *mut u8,
    done: *const Completion,
    /// The aligned range a read must cover to serve the job (whole clusters when checked).
    lo: u64,
    hi: u64,
    /// How far the file must go for the job: its end, or its last cluster's when checked.
    need_end: u64,
}

// SAFETY: the pointers are only used as `submit`'s contract allows, from whichever reader takes
// the job; the contract makes them valid and unshared until the completion is set.
unsafe impl Send for Job {}

impl Job {
    fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// One merged read: the aligned range `start..end`, of which `..need_end` must be present.
struct Read {
    start: u64,
    end: u64,
    need_end: u64,
    /// Its requests: the next this many in its class's ring.
    n_jobs: usize,
    submitted: Instant,
    /// Queued as demand rather than prefetch.
    demand: bool,
}

struct Queue {
    demand: VecDeque<Read>,
    prefetch: VecDeque<Read>,
    /// Requests in `demand` and `prefetch`: each class has its own capacity, so prefetch
    /// filling the queue never blocks a demand submit.
    queued: [usize; 2],
    /// The queued requests of each class, in the order of the class's reads: a read's requests
    /// are contiguous, and reads leave in order, so its requests are at the front when it does.
    rings: [VecDeque<Job>; 2],
    shutdown: bool,
    /// Test hook: readers take nothing while set.
    paused: bool,
}

impl Queue {
    fn depth(&self) -> u32 {
        (self.queued[0] + self.queued[1]) as u32
    }
}

/// A run of sorted requests that one read serves, as planned by `submit`.
#[derive(Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
    need_end: u64,
    /// Index range into `Scratch::demand` (demand spans) or `Scratch::loose` (prefetch spans).
    lo: usize,
    hi: usize,
    demand: bool,
}

/// `submit`'s working memory, kept between calls.
#[derive(Default)]
struct Scratch {
    demand: Vec<Job>,
    prefetch: Vec<Job>,
    /// Prefetch requests that ride along with a demand span: (span index, job), by offset.
    attached: Vec<(usize, Job)>,
    /// Prefetch requests with spans of their own.
    loose: Vec<Job>,
    spans: Vec<Span>,
}

struct ErrorLog {
    first: Option<String>,
    recent: VecDeque<(u32, io::ErrorKind, String)>,
    last_id: u32,
}

/// A page-aligned, zero-initialised buffer, one per reader.
struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: owned memory, used by one thread at a time.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    fn new(len: usize) -> AlignedBuf {
        let layout = Self::layout(len);
        // SAFETY: `len` is a non-zero multiple of ALIGN (checked by `open`).
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| handle_alloc_error(layout));
        AlignedBuf { ptr, len }
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len, ALIGN).expect("bounce buffer size fits in isize")
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: an initialised allocation of `len` bytes owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn align_down(x: u64) -> u64 {
    x & !(ALIGN_U64 - 1)
}

fn align_up(x: u64) -> u64 {
    align_down(x + ALIGN_U64 - 1)
}

/// Groups `jobs` (sorted by offset) into spans appended to `out`: a job joins the current span if
/// its aligned range starts within `gap` bytes of the span's end (overlap included) and the span
/// stays within `max_read`; otherwise it starts a new one. A single job larger than `max_read`
/// gets a span of its own, which the reader reads in `max_read` pieces.
fn plan(jobs: &[Job], gap: u64, max_read: u64, demand: bool, out: &mut Vec<Span>) {
    let first = out.len();
    for (i, job) in jobs.iter().enumerate() {
        let (start, end) = (job.lo, job.hi);
        if out.len() > first {
            let span = out.last_mut().expect("non-empty");
            let end = end.max(span.end);
            if start <= span.end.saturating_add(gap) && end - span.start <= max_read {
                span.end = end;
                span.need_end = span.need_end.max(job.need_end);
                span.hi = i + 1;
                continue;
            }
        }
        out.push(Span {
            start,
            end,
            need_end: job.need_end,
            lo: i,
            hi: i + 1,
            demand,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Opening the file
// ---------------------------------------------------------------------------------------------

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// Opens `path` read-only, bypassing the page cache if `direct` and the platform and file
/// system allow. Returns whether it does.
fn open_file(path: &Path, direct: bool, faults: &Faults) -> Result<(File, bool)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if direct {
        use std::os::unix::fs::OpenOptionsExt;
        let opened = if faults.refuse_direct_at_open {
            Err(einval())
        } else {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
        };
        match opened {
            Ok(file) => return Ok((file, true)),
            // The file system has no direct I/O (tmpfs before Linux 6.6, some FUSE): buffered.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    if direct && !faults.refuse_direct_at_open {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on an fd we own.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_NOCACHE, 1) } != -1 {
            return Ok((file, true));
        }
    }
    let _ = (direct, faults);
    Ok((file, false))
}

/// Tells the kernel how a buffered file is read (`advice`: `POSIX_FADV_*`) over `offset..+len`
/// (0 = to the end). Best effort: a failure only costs page cache.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn fadvise(file: &File, offset: u64, len: u64, advice: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on an fd we own. Offsets are below i64::MAX (checked at submit).
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            advice,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------------

struct Shared {
    file: File,
    path: PathBuf,
    /// Whether reads currently bypass the page cache. Starts as `open` found; turns false for
    /// good if a direct read is refused.
    direct: AtomicBool,
    max_read: usize,
    capacity: usize,
    check: Option<Arc<ClusterCheck>>,
    faults: Faults,
    queue: Mutex<Queue>,
    /// Readers wait here for work.
    work: Condvar,
    /// `submit` waits here for queue space.
    space: Condvar,
    stats: Counters,
    errors: Mutex<ErrorLog>,
    /// `pread` calls issued, for fault injection.
    read_seq: AtomicU64,
    /// Test hook: the start offset and demand flag of every read, in the order readers took them.
    #[cfg(test)]
    served: Mutex<Vec<(u64, bool)>>,
}

/// Reads records of one file into caller memory on [`IoConfig::readers`] threads. See the module
/// documentation for the design.
///
/// `Send` and `Sync`: any thread may submit and wait. Dropping it stops the readers after their
/// current read and fails every request still queued.
pub struct IoEngine {
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    scratch: Mutex<Scratch>,
    merge_gap: u64,
}

impl IoEngine {
    /// Opens `path` and starts the readers. Fails if the file cannot be opened, is not a regular
    /// file, or `cfg` is out of range.
    pub fn open(path: &Path, cfg: IoConfig) -> Result<IoEngine> {
        if cfg.readers == 0 || cfg.readers > MAX_READERS {
            return Err(Error::Invalid(format!(
                "offload I/O: {} reader threads (expected 1 to {MAX_READERS})",
                cfg.readers
            )));
        }
        if cfg.queue_capacity == 0 || cfg.queue_capacity > MAX_QUEUE {
            return Err(Error::Invalid(format!(
                "offload I/O: queue capacity of {} requests (expected 1 to {MAX_QUEUE})",
                cfg.queue_capacity
            )));
        }
        if cfg.max_read == 0 || cfg.max_read > 1 << 30 {
            return Err(Error::Invalid(format!(
                "offload I/O: max_read of {} bytes (expected 1 byte to 1 GiB)",
                cfg.max_read
            )));
        }
        let mut max_read = cfg.max_read.next_multiple_of(ALIGN);
        if let Some(c) = &cfg.check {
            // Reads start on a cluster and go in pieces of `max_read`: whole clusters each, so
            // every cluster is checked from one piece.
            let cb = c.cluster_bytes();
            max_read = (max_read - max_read % cb).max(cb);
        }
        let (file, direct) = open_file(path, cfg.direct, &cfg.faults)?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::io(
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if !direct {
            fadvise(&file, 0, 0, libc::POSIX_FADV_RANDOM);
        }
        let shared = Arc::new(Shared {
            file,
            path: path.to_path_buf(),
            direct: AtomicBool::new(direct),
            max_read,
            capacity: cfg.queue_capacity,
            check: cfg.check,
            faults: cfg.faults,
            queue: Mutex::new(Queue {
                demand: VecDeque::with_capacity(cfg.queue_capacity),
                prefetch: VecDeque::with_capacity(cfg.queue_capacity),
                queued: [0; 2],
                rings: [
                    VecDeque::with_capacity(cfg.queue_capacity),
                    VecDeque::with_capacity(cfg.queue_capacity),
                ],
                shutdown: false,
                paused: false,
            }),
            work: Condvar::new(),
            space: Condvar::new(),
            stats: Counters::default(),
            errors: Mutex::new(ErrorLog {
                first: None,
                recent: VecDeque::with_capacity(RECENT_ERRORS),
                last_id: SHUTDOWN_ID,
            }),
            read_seq: AtomicU64::new(0),
            #[cfg(test)]
            served: Mutex::new(Vec::new()),
        });
        let mut engine = IoEngine {
            shared,
            readers: Vec::with_capacity(cfg.readers),
            scratch: Mutex::new(Scratch::default()),
            merge_gap: cfg.merge_gap,
        };
        for i in 0..cfg.readers {
            let shared = Arc::clone(&engine.shared);
            let buf = AlignedBuf::new(max_read);
            let handle = std::thread::Builder::new()
                .name(format!("offload-io-{i}"))
                .spawn(move || shared.reader(buf))
                .map_err(|e| Error::io(path, e))?; // Dropping `engine` joins those started.
            engine.readers.push(handle);
        }
        Ok(engine)
    }

    /// Whether reads bypass the page cache (`O_DIRECT`, or `F_NOCACHE` on Apple systems). Turns
    /// false if the file system refused a direct read and the engine fell back to buffered reads.
    pub fn direct(&self) -> bool {
        self.shared.direct.load(Ordering::Relaxed)
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Queues `reqs`, demand requests ahead of every prefetch request, and returns once all are
    /// queued; readers then fill the destinations and set the completions. Each completion is
    /// set to pending first. Requests of one call are merged with each other (not with earlier
    /// calls'), so submit a layer's requests together.
    ///
    /// Blocks while the queue holds [`IoConfig::queue_capacity`] requests of the same class
    /// (demand or prefetch; a merged read larger than that is queued alone once its class's
    /// queue is empty), holding up other threads' submits meanwhile. Zero-length requests complete at
    /// once; requests ending past the largest file offset fail at once.
    ///
    /// # Safety
    /// For every request, until its completion is no longer pending:
    /// * `dest` is valid for writes of `len` bytes, and nothing else reads or writes those bytes
    ///   (no two requests of the engine's pending ones overlap);
    /// * `done` points to a live [`Completion`] used by no other pending request, which nobody
    ///   else sets or resets.
    pub unsafe fn submit(&self, reqs: &[ReadRequest]) {
        if reqs.is_empty() {
            return;
        }
        let shared = &*self.shared;
        let now = Instant::now();
        let mut scratch = lock(&self.scratch);
        let sc = &mut *scratch;
        sc.demand.clear();
        sc.prefetch.clear();
        sc.attached.clear();
        sc.loose.clear();
        sc.spans.clear();

        let mut prefetch = 0u64;
        for r in reqs {
            prefetch += u64::from(r.prefetch);
            // SAFETY: live and ours until set, by the contract.
            unsafe { (*r.done).0.store(PENDING, Ordering::Relaxed) };
            if r.len == 0 {
                // SAFETY: as above.
                unsafe { Completion::finish(r.done, DONE) };
                continue;
            }
            let end = r.offset.checked_add(u64::from(r.len));
            let range = match (end, &shared.check) {
                (Some(end), _) if end > MAX_OFFSET => None,
                (Some(end), None) => Some((align_down(r.offset), align_up(end), end)),
                (Some(_), Some(c)) => c
                    .span(r.offset, u64::from(r.len))
                    .map(|s| (s.start, s.end, s.end)),
                (None, _) => None,
            };
            let Some((lo, hi, need_end)) = range else {
                let msg = if end.is_some_and(|e| e <= MAX_OFFSET) {
                    format!(
                        "request of {} bytes at offset {} lies outside the checked data section",
                        r.len, r.offset
                    )
                } else {
                    format!(
                        "request of {} bytes at offset {} ends past the largest file offset",
                        r.len, r.offset
                    )
                };
                let id = shared.record_error(io::ErrorKind::InvalidInput, msg, 1);
                // SAFETY: as above.
                unsafe { Completion::finish(r.done, FAILED_BASE + id) };
                continue;
            };
            let job = Job {
                offset: r.offset,
                len: r.len,
                dest: r.dest,
                done: r.done,
                lo,
                hi,
                need_end,
            };
            if r.prefetch {
                sc.prefetch.push(job);
            } else {
                sc.demand.push(job);
            }
        }
        add(&shared.stats.requests, reqs.len() as u64);
        add(&shared.stats.prefetch_requests, prefetch);

        let max_read = shared.max_read as u64;
        sc.demand.sort_unstable_by_key(|j| j.offset);
        sc.prefetch.sort_unstable_by_key(|j| j.offset);
        plan(&sc.demand, self.merge_gap, max_read, true, &mut sc.spans);
        let n_demand = sc.spans.len();
        for job in &sc.prefetch {
            let (start, end) = (job.lo, job.hi);
            let k = sc.spans[..n_demand].partition_point(|s| s.start <= start);
            if k > 0 && end <= sc.spans[k - 1].end {
                sc.attached.push((k - 1, *job));
            } else {
                sc.loose.push(*job);
            }
        }
        plan(&sc.loose, self.merge_gap, max_read, false, &mut sc.spans);

        let mut queue = lock(&shared.queue);
        let mut att = 0;
        for (i, span) in sc.spans.iter().enumerate() {
            let att_end = att
                + sc.attached[att..]
                    .iter()
                    .take_while(|(k, _)| *k == i)
                    .count();
            let n = span.hi - span.lo + att_end - att;
            let class = usize::from(!span.demand);
            while queue.queued[class] > 0 && queue.queued[class] + n > shared.capacity {
                queue = shared
                    .space
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let own = if span.demand { &sc.demand } else { &sc.loose };
            let ring = &mut queue.rings[class];
            ring.extend(&own[span.lo..span.hi]);
            ring.extend(sc.attached[att..att_end].iter().map(|(_, job)| *job));
            let need_end = sc.attached[att..att_end]
                .iter()
                .fold(span.need_end, |e, (_, job)| e.max(job.need_end));
            att = att_end;
            let read = Read {
                start: span.start,
                end: span.end,
                need_end,
                n_jobs: n,
                submitted: now,
                demand: span.demand,
            };
            if span.demand {
                queue.demand.push_back(read);
            } else {
                queue.prefetch.push_back(read);
            }
            queue.queued[class] += n;
            shared
                .stats
                .queue_depth
                .store(queue.depth(), Ordering::Relaxed);
            add(&shared.stats.merged, n as u64 - 1);
            shared.work.notify_one();
        }
    }

    /// Waits for `done` like [`Completion::wait`], turning a failure into its recorded error.
    pub fn wait(&self, done: &Completion) -> Result<()> {
        done.wait().map_err(|f| self.failure(f))
    }

    /// The error behind a failure: the path, and what went wrong (the read's offset and length
    /// and the OS error, or a short read, or the shutdown). Messages of more than the last 64
    /// failed reads are no longer kept; the error then says so and quotes the first one.
    pub fn failure(&self, failed: ReadFailed) -> Error {
        let (kind, msg) = if failed.is_shutdown() {
            (io::ErrorKind::Interrupted, failed.to_string())
        } else {
            let log = lock(&self.shared.errors);
            match log.recent.iter().find(|(id, _, _)| *id == failed.0) {
                Some((_, kind, msg)) => (*kind, msg.clone()),
                None => (
                    io::ErrorKind::Other,
                    format!(
                        "offload read failed (error #{}, no longer kept; the first error was: {})",
                        failed.0,
                        log.first.as_deref().unwrap_or("none")
                    ),
                ),
            }
        };
        Error::io(&self.shared.path, io::Error::new(kind, msg))
    }

    /// The first failure's message, if any read failed.
    pub fn first_error(&self) -> Option<String> {
        lock(&self.shared.errors).first.clone()
    }

    /// A snapshot of the counters (each read atomically, not all at one instant).
    pub fn stats(&self) -> IoStats {
        let s = &self.shared.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IoStats {
            queue_depth: s.queue_depth.load(Ordering::Relaxed),
            in_flight: s.in_flight.load(Ordering::Relaxed),
            reads: get(&s.reads),
            bytes_read: get(&s.bytes_read),
            requests: get(&s.requests),
            prefetch_requests: get(&s.prefetch_requests),
            merged: get(&s.merged),
            latency_us_sum: get(&s.latency_us_sum),
            read_us_sum: get(&s.read_us_sum),
            errors: get(&s.errors),
            failed_requests: get(&s.failed_requests),
        }
    }

    #[cfg(test)]
    fn set_paused(&self, paused: bool) {
        lock(&self.shared.queue).paused = paused;
        self.shared.work.notify_all();
    }

    #[cfg(test)]
    fn raw_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.shared.file.as_raw_fd()
    }
}

impl Drop for IoEngine {
    fn drop(&mut self) {
        lock(&self.shared.queue).shutdown = true;
        self.shared.work.notify_all();
        for handle in self.readers.drain(..) {
            let _ = handle.join();
        }
        let mut queue = lock(&self.shared.queue);
        let q = &mut *queue;
        let mut failed = 0;
        q.demand.clear();
        q.prefetch.clear();
        for job in q.rings.iter_mut().flat_map(|r| r.drain(..)) {
            // SAFETY: queued jobs' completions are live until set, by `submit`'s contract.
            unsafe { Completion::finish(job.done, FAILED_BASE + SHUTDOWN_ID) };
            failed += 1;
        }
        q.queued = [0; 2];
        add(&self.shared.stats.failed_requests, failed);
        self.shared.stats.queue_depth.store(0, Ordering::Relaxed);
    }
}

impl Shared {
    /// A reader thread: takes demand reads first, then prefetch reads, until shutdown.
    fn reader(&self, mut buf: AlignedBuf) {
        // The requests of the read being served (a read holds at most `capacity` of them, unless
        // it came alone into an empty queue).
        let mut jobs: Vec<Job> = Vec::with_capacity(self.capacity);
        // Per job, its outcome; per cluster of a piece, its check's outcome (0 = not checked yet).
        let mut outcomes: Vec<u32> = Vec::with_capacity(self.capacity);
        let n_clusters = self
            .check
            .as_ref()
            .map_or(0, |c| self.max_read / c.cluster_bytes());
        let mut checked = vec![0u32; n_clusters];
        loop {
            let read = {
                let mut q = lock(&self.queue);
                loop {
                    if q.shutdown {
                        return;
                    }
                    if !q.paused {
                        let next = match q.demand.pop_front() {
                            Some(read) => Some(read),
                            None => q.prefetch.pop_front(),
                        };
                        if let Some(read) = next {
                            let class = usize::from(!read.demand);
                            q.queued[class] -= read.n_jobs;
                            jobs.clear();
                            jobs.extend(q.rings[class].drain(..read.n_jobs));
                            self.stats.queue_depth.store(q.depth(), Ordering::Relaxed);
                            break read;
                        }
                    }
                    q = self.work.wait(q).unwrap_or_else(PoisonError::into_inner);
                }
            };
            self.space.notify_all();
            #[cfg(test)]
            lock(&self.served).push((read.start, read.demand));
            // A panic here would be a bug, but must not leave waiters hanging: `serve` sets the
            // completions only at its very end, so on a panic none is set yet.
            let served = catch_unwind(AssertUnwindSafe(|| {
                self.serve(&read, &jobs, &mut buf, &mut outcomes, &mut checked)
            }));
            if served.is_err() {
                self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                let msg = format!(
                    "offload reader panicked reading {} bytes at offset {}",
                    read.end - read.start,
                    read.start
                );
                let id = self.record_error(io::ErrorKind::Other, msg, jobs.len() as u64);
                add(&self.stats.errors, 1);
                for job in &jobs {
                    // SAFETY: live until set, by `submit`'s contract; none was set (see above).
                    unsafe { Completion::finish(job.done, FAILED_BASE + id) };
                }
            }
        }
    }

    /// Performs `read` (in `max_read` pieces) and finishes its requests, `jobs`. With a check,
    /// a job whose clusters do not all pass fails alone (`outcomes`, `checked`: scratch).
    fn serve(
        &self,
        read: &Read,
        jobs: &[Job],
        buf: &mut AlignedBuf,
        outcomes: &mut Vec<u32>,
        checked: &mut [u32],
    ) {
        let stats = &self.stats;
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let buf = buf.as_mut_slice();
        let mut outcome = DONE;
        outcomes.clear();
        outcomes.resize(jobs.len(), DONE);
        let mut pos = read.start;
        while pos < read.end {
            let want = (read.end - pos).min(self.max_read as u64) as usize;
            let need = (read.need_end.min(pos + want as u64)).saturating_sub(pos) as usize;
            let t0 = Instant::now();
            let result = self.read_piece(&mut buf[..want], pos);
            add(&stats.read_us_sum, t0.elapsed().as_micros() as u64);
            add(&stats.reads, 1);
            let failure = match result {
                Ok(got) => {
                    add(&stats.bytes_read, got as u64);
                    if got >= need {
                        if let Some(c) = &self.check {
                            self.check_piece(c, &buf[..got], pos, jobs, outcomes, checked);
                        }
                        copy_out(&buf[..got], pos, jobs, outcomes);
                        None
                    } else {
                        let size = match self.file.metadata() {
                            Ok(m) => format!("{} bytes", m.len()),
                            Err(e) => format!("of unknown size ({e})"),
                        };
                        Some((
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "short read: {got} of the {need} bytes needed at offset {pos} \
                                 (for {} requests); the file is now {size} (truncated while in \
                                 use, or a request past its end)",
                                jobs.len()
                            ),
                        ))
                    }
                }
                Err(e) => Some((
                    e.kind(),
                    format!(
                        "reading {want} bytes at offset {pos} (for {} requests) failed: {e}",
                        jobs.len()
                    ),
                )),
            };
            if let Some((kind, msg)) = failure {
                let id = self.record_error(kind, msg, jobs.len() as u64);
                add(&stats.errors, 1);
                outcome = FAILED_BASE + id;
                break;
            }
            pos += want as u64;
        }
        let latency = read.submitted.elapsed().as_micros() as u64;
        add(&stats.latency_us_sum, latency * jobs.len() as u64);
        stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        for (job, &own) in jobs.iter().zip(outcomes.iter()) {
            // A failed read fails every job; otherwise a job's own check decides.
            let value = if outcome == DONE { own } else { outcome };
            if outcome == DONE && own != DONE {
                add(&stats.failed_requests, 1);
            }
            // SAFETY: live until set, by `submit`'s contract; not touched after.
            unsafe { Completion::finish(job.done, value) };
        }
    }

    /// Checks the clusters of `data` (the file's bytes from `pos`, a cluster boundary, in whole
    /// clusters up to the jobs' needs) that the jobs use, each cluster once; a job with a
    /// damaged cluster gets that cluster's failure in `outcomes`.
    fn check_piece(
        &self,
        check: &ClusterCheck,
        data: &[u8],
        pos: u64,
        jobs: &[Job],
        outcomes: &mut [u32],
        checked: &mut [u32],
    ) {
        let cb = check.cluster_bytes() as u64;
        let data_end = pos + data.len() as u64;
        let n = (data.len() as u64).div_ceil(cb) as usize;
        let n = n.min(checked.len());
        checked[..n].fill(0);
        for (job, out) in jobs.iter().zip(outcomes.iter_mut()) {
            let (from, to) = (job.lo.max(pos), job.hi.min(data_end));
            let mut at = from;
            while at < to && *out == DONE {
                let k = ((at - pos) / cb) as usize;
                if checked[k] == 0 {
                    let bytes = &data[(at - pos) as usize..(at - pos + cb) as usize];
                    checked[k] = match check.check(at, bytes) {
                        Ok(()) => DONE,
                        Err(msg) => {
                            add(&self.stats.errors, 1);
                            FAILED_BASE + self.record_error(io::ErrorKind::InvalidData, msg, 0)
                        }
                    };
                }
                *out = checked[k];
                at += cb;
            }
        }
    }

    /// Reads `buf.len()` bytes at `pos` (both aligned), falling back to buffered reads if the
    /// file system refuses direct ones. Returns fewer bytes only at the end of the file.
    fn read_piece(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        loop {
            let direct = self.direct.load(Ordering::Relaxed);
            match self.pread_full(buf, pos, direct) {
                Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => self.stop_direct(),
                result => {
                    #[cfg(any(target_os = "linux", target_os = "android"))]
                    if !direct {
                        fadvise(&self.file, pos, buf.len() as u64, libc::POSIX_FADV_DONTNEED);
                    }
                    return result;
                }
            }
        }
    }

    /// `pread` until `buf` is full or the file ends (with `O_DIRECT`, a read that ends off a
    /// block boundary has hit the end). Retries on `EINTR`.
    fn pread_full(&self, buf: &mut [u8], pos: u64, direct: bool) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            let seq = self.read_seq.fetch_add(1, Ordering::Relaxed);
            if self.faults.panic_reads.contains(&seq) {
                panic!("injected reader panic (test fault)");
            }
            if self.faults.fail_reads.contains(&seq) {
                return Err(io::Error::other("injected read error (test fault)"));
            }
            if direct && self.faults.refuse_direct_at_read {
                return Err(einval());
            }
            match self.file.read_at(&mut buf[got..], pos + got as u64) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    if direct && got % ALIGN != 0 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    /// The file system refused a direct read: clear `O_DIRECT` (`F_NOCACHE`) on the shared open
    /// file and read buffered from now on.
    fn stop_direct(&self) {
        use std::os::fd::AsRawFd;
        if !self.direct.swap(false, Ordering::Relaxed) {
            return; // Another reader did it.
        }
        let fd = self.file.as_raw_fd();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        // SAFETY: fcntl on an fd we own. Linux lets F_SETFL change O_DIRECT.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags != -1 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT);
            }
        }
        #[cfg(any(target_os = "macos", target_os = "ios"))]
        // SAFETY: fcntl on an fd we own.
        unsafe {
            libc::fcntl(fd, libc::F_NOCACHE, 0);
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        fadvise(&self.file, 0, 0, libc::POSIX_FADV_RANDOM);
        let _ = fd;
    }

    /// Records a failure of `requests` requests and returns its id.
    fn record_error(&self, kind: io::ErrorKind, msg: String, requests: u64) -> u32 {
        add(&self.stats.failed_requests, requests);
        let mut log = lock(&self.errors);
        log.last_id = if log.last_id >= MAX_ERROR_ID {
            1
        } else {
            log.last_id + 1
        };
        let id = log.last_id;
        if log.first.is_none() {
            log.first = Some(msg.clone());
        }
        if log.recent.len() == RECENT_ERRORS {
            log.recent.pop_front();
        }
        log.recent.push_back((id, kind, msg));
        id
    }
}

/// Copies each job's part of `data` (the file's bytes from `pos`) to its destination, but not
/// for jobs that already failed (a damaged cluster's bytes go nowhere).
fn copy_out(data: &[u8], pos: u64, jobs: &[Job], outcomes: &[u32]) {
    let data_end = pos + data.len() as u64;
    for (job, _) in jobs.iter().zip(outcomes).filter(|(_, &o)| o == DONE) {
        let from = job.offset.max(pos);
        let to = job.end().min(data_end);
        if from < to {
            // SAFETY: `from..to` lies in `data` and in the job's range, whose `dest` is valid for
            // `len` bytes and ours alone until the completion is set (`submit`'s contract).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    data.as_ptr().add((from - pos) as usize),
                    job.dest.add((from - job.offset) as usize),
                    (to - from) as usize,
                );
            }
        }
    }
}

// The tests use Linux interfaces (fdinfo, mincore) to check what the kernel sees.
#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests;
