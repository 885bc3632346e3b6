//! A small persistent thread pool built for the forward pass's many short parallel sections.
//!
//! Decode runs a couple of hundred parallel operations per token, each lasting tens of
//! microseconds, so starting one must cost far less than that. Workers wait for work by spinning
//! on a generation counter for a short while, then fall asleep on a condition variable so an idle
//! engine (a person typing in the TUI) uses no CPU.
//!
//! Work is a set of chunks handed out through an atomic counter, and a call completes when every
//! chunk is done, not when every worker has checked in. On a machine with more runnable threads
//! than cores (shared servers, phones) a worker may not get a core for milliseconds; the caller
//! then simply takes its chunks. A reference count with a per-generation "closed" mark keeps a
//! worker that wakes up late from touching a job that has already returned.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Spins before a waiting worker goes to sleep: long enough to bridge the gap between two
/// operations of one token, short enough not to burn a core when generation stops.
const SPIN_LIMIT: u32 = 1 << 16;
/// Spins between two `yield_now` calls while waiting.
const YIELD_EVERY: u32 = 256;

type Job = *const (dyn Fn(usize, usize) + Sync);

struct Shared {
    /// The current job: written by the caller before `generation` is bumped, read by workers
    /// that registered in `refs` for that generation while it was still open.
    job: UnsafeCell<Option<Job>>,
    n_chunks: AtomicUsize,
    next: AtomicUsize,
    done: AtomicUsize,
    generation: AtomicU64,
    /// The last generation whose chunks are all done: workers arriving later must not start it.
    closed: AtomicU64,
    /// Workers currently inside a job.
    refs: AtomicUsize,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only while no worker can read it (see `for_each_chunk`), and the closure
// it points to is `Sync`.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// Most worker threads per CPU the process may use. More threads than cores only add
/// synchronisation, and each costs a stack and per-thread scratch buffers: at `-t 10000` a session
/// took 910 MB, and at `-t 100000` thread start-up ran out of memory maps and aborted the process
/// (Rust's runtime cannot report that as an error). Four per CPU leaves room for experiments with
/// oversubscription and refuses the typos.
pub const MAX_THREADS_PER_CPU: usize = 4;

/// The most threads a pool (and so a session) may have: [`MAX_THREADS_PER_CPU`] × the CPUs
/// available to this process (its affinity mask and cgroup quota count, not just the machine's).
pub fn max_threads() -> usize {
    available_cpus() * MAX_THREADS_PER_CPU
}

/// CPUs this process may run on (at least 1).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Why `n` threads are too many, or `None` when the count is allowed (0 means the default and is
/// allowed): the message the command line and the engine give.
pub fn check_thread_count(n: usize) -> Option<String> {
    let max = max_threads();
    (n > max).then(|| {
        format!(
            "{n} threads is more than this machine can use: at most {max} ({MAX_THREADS_PER_CPU} per CPU, {} CPUs available)",
            available_cpus()
        )
    })
}

/// A fixed set of worker threads; the calling thread takes part as thread 0.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    n_threads: usize,
}

fn wait_until(cond: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !cond() {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(YIELD_EVERY) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

impl ThreadPool {
    /// A pool of `n_threads` (at least 1) counting the caller: `n_threads - 1` OS threads are
    /// spawned. More than [`max_threads`] is refused, and a thread the system will not start is an
    /// error (the workers already started are stopped and joined), never a panic.
    pub fn new(n_threads: usize) -> std::io::Result<Self> {
        if let Some(why) = check_thread_count(n_threads) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
        }
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            n_chunks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            refs: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        // Built before the workers start, so that on a failed spawn dropping it stops and joins
        // the ones already running instead of leaving them waiting forever.
        let mut pool = ThreadPool {
            shared,
            workers: Vec::with_capacity(n_threads - 1),
            n_threads,
        };
        for idx in 1..n_threads {
            let s = pool.shared.clone();
            let w = std::thread::Builder::new()
                .name(format!("sparsetop-worker-{idx}"))
                .spawn(move || worker(s, idx))
                .map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("the system would not start worker thread {idx}: {e}"),
                    )
                })?;
            pool.workers.push(w);
        }
        Ok(pool)
    }

    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Runs `f(thread_index, chunk)` for every `chunk` in `0..n_chunks` and returns when all are
    /// done. Chunks are handed out dynamically; the caller is thread 0 and works too, so the call
    /// finishes even if no worker gets a core. A panic in any chunk is re-raised here.
    pub fn for_each_chunk(&self, n_chunks: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        if n_chunks == 0 {
            return;
        }
        if self.n_threads == 1 || n_chunks == 1 {
            for c in 0..n_chunks {
                f(0, c);
            }
            return;
        }
        let s = &*self.shared;
        // SAFETY: no worker is inside a job (`refs` was 0 when the previous call returned, and a
        // worker only enters a generation that is open), so nobody reads `job` now. The lifetime
        // is erased, but the job is closed and `refs` drained before this function returns.
        unsafe {
            let job: Job = std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), Job>(f);
            *s.job.get() = Some(job);
        }
        s.n_chunks.store(n_chunks, Ordering::Relaxed);
        s.next.store(0, Ordering::Relaxed);
        s.done.store(0, Ordering::Relaxed);
        let gen = s.generation.fetch_add(1, Ordering::SeqCst) + 1;
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| run_chunks(s, f, 0)));
        if mine.is_err() {
            // The chunk that panicked was claimed but not counted; skip what is left so the
            // workers finish quickly. The panic is re-raised below.
            s.panicked.store(true, Ordering::SeqCst);
            s.done.fetch_add(1, Ordering::Release);
            drain_chunks(s);
        }
        wait_until(|| s.done.load(Ordering::Acquire) >= n_chunks);
        s.closed.store(gen, Ordering::SeqCst);
        wait_until(|| s.refs.load(Ordering::SeqCst) == 0);
        // SAFETY: the generation is closed and no worker is inside it.
        unsafe { *s.job.get() = None };
        if let Err(p) = mine {
            s.panicked.store(false, Ordering::SeqCst);
            std::panic::resume_unwind(p);
        }
        if s.panicked.swap(false, Ordering::SeqCst) {
            panic!("a sparsetop worker thread panicked");
        }
    }
}

/// Claims and runs chunks until none are left.
fn run_chunks(s: &Shared, f: &(dyn Fn(usize, usize) + Sync), tid: usize) {
    let n = s.n_chunks.load(Ordering::Relaxed);
    loop {
        let c = s.next.fetch_add(1, Ordering::Relaxed);
        if c >= n {
            return;
        }
        if !s.panicked.load(Ordering::Relaxed) {
            f(tid, c);
        }
        s.done.fetch_add(1, Ordering::Release);
    }
}

/// Marks every unclaimed chunk done without running it (after a panic).
fn drain_chunks(s: &Shared) {
    let n = s.n_chunks.load(Ordering::Relaxed);
    loop {
        let c = s.next.fetch_add(1, Ordering::Relaxed);
        if c >= n {
            return;
        }
        s.done.fetch_add(1, Ordering::Release);
    }
}

fn worker(s: Arc<Shared>, idx: usize) {
    let mut seen = 0u64;
    loop {
        // Wait for a new generation: spin first (yielding now and then), then sleep.
        let mut spins = 0u32;
        let gen = loop {
            let g = s.generation.load(Ordering::SeqCst);
            if g != seen {
                break g;
            }
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            spins += 1;
            if spins < SPIN_LIMIT {
                if spins.is_multiple_of(YIELD_EVERY) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            let guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            let guard = if s.generation.load(Ordering::SeqCst) == seen
                && !s.shutdown.load(Ordering::SeqCst)
            {
                s.wake.wait(guard).unwrap_or_else(|e| e.into_inner())
            } else {
                guard
            };
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
            drop(guard);
            spins = 0;
        };
        seen = gen;
        // Register, then check the generation is still open (SeqCst on both sides: either the
        // caller sees this registration and waits for it, or this worker sees the close).
        s.refs.fetch_add(1, Ordering::SeqCst);
        if s.closed.load(Ordering::SeqCst) < gen {
            // SAFETY: the generation is open and this worker is registered, so the caller keeps
            // the job alive and unchanged until `refs` drops.
            if let Some(job) = unsafe { *s.job.get() } {
                let f = unsafe { &*job };
                if catch_unwind(AssertUnwindSafe(|| run_chunks(&s, f, idx))).is_err() {
                    s.panicked.store(true, Ordering::SeqCst);
                    // The chunk that panicked was claimed but not counted.
                    s.done.fetch_add(1, Ordering::Release);
                    drain_chunks(&s);
                }
            }
        }
        s.refs.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _g = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_range_exactly_once() {
        let pool = ThreadPool::new(3).unwrap();
        for n in [0, 1, 2, 7, 100, 1000] {
            for _ in 0..50 {
                let seen: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                pool.for_each_chunk(n, &|tid, c| {
                    assert!(tid < 3);
                    seen[c].fetch_add(1, Ordering::Relaxed);
                });
                assert!(seen.iter().all(|h| h.load(Ordering::Relaxed) == 1), "n={n}");
            }
        }
    }

    #[test]
    fn sleeping_workers_wake_up_and_help() {
        let pool = ThreadPool::new(2).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let tids: Vec<AtomicUsize> = (0..2).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..20 {
            pool.for_each_chunk(64, &|tid, _| {
                tids[tid].fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_micros(200));
            });
        }
        assert_eq!(
            tids.iter()
                .map(|t| t.load(Ordering::Relaxed))
                .sum::<usize>(),
            1280
        );
        assert!(
            tids[1].load(Ordering::Relaxed) > 0,
            "the worker never took a chunk"
        );
    }

    #[test]
    fn a_worker_panic_reaches_the_caller() {
        let pool = ThreadPool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.for_each_chunk(1000, &|_, c| {
                if c == 500 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        // The pool still works afterwards.
        let count = AtomicUsize::new(0);
        pool.for_each_chunk(10, &|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn too_many_threads_are_refused_before_any_starts() {
        let max = max_threads();
        assert!(max >= MAX_THREADS_PER_CPU);
        if max <= 64 {
            assert!(ThreadPool::new(max).is_ok());
        }
        for n in [max + 1, 100_000, usize::MAX] {
            let e = ThreadPool::new(n).err().expect("refused");
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            let msg = e.to_string();
            assert!(
                msg.contains(&n.to_string()) && msg.contains(&format!("at most {max}")),
                "{msg}"
            );
        }
        assert_eq!(check_thread_count(0), None);
    }

    /// Threads of this process, from /proc.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn thread_count() -> usize {
        std::fs::read_dir("/proc/self/task").unwrap().count()
    }

    /// A worker the system will not start (here: no address space left for its stack) is an
    /// error from `new`, and the workers started before it are stopped, not leaked. Runs in a
    /// child process, since the address-space limit applies to the whole process. Root ignores
    /// RLIMIT_NPROC, so the address space is what is limited. x86-64 only: the aarch64 tests run
    /// under qemu-user here, where the limit bounds the emulator's own address space, not the
    /// guest's stacks, and the child dies before it can report.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn a_thread_that_cannot_start_is_an_error_and_leaks_no_worker() {
        const CHILD: &str = "SPARSETOP_POOL_SPAWN_FAILURE_CHILD";
        const NAME: &str =
            "threadpool::tests::a_thread_that_cannot_start_is_an_error_and_leaks_no_worker";
        if std::env::var_os(CHILD).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
                .env(CHILD, "1")
                .env_remove("RUST_MIN_STACK")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "child failed: {text}");
            assert!(text.contains("1 passed"), "{text}");
            assert!(text.contains("spawn failure reported:"), "{text}");
            return;
        }
        let before = thread_count();
        let vm_kib: u64 = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        // Room for one worker's 2 MiB stack and a little more: the first worker starts, the
        // second cannot map its stack.
        let limit = (vm_kib << 10) + (3 << 20);
        let rl = libc::rlimit {
            rlim_cur: limit as libc::rlim_t,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
        let r = ThreadPool::new(max_threads().max(3));
        let unlimited = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &unlimited) }, 0);
        let e = r
            .err()
            .expect("a pool without room for its stacks must fail");
        println!("spawn failure reported: {e}");
        assert!(
            e.to_string().contains("would not start worker thread"),
            "{e}"
        );
        assert_eq!(
            thread_count(),
            before,
            "workers of the failed pool are left running"
        );
    }

    #[test]
    fn many_short_calls_stay_correct() {
        let pool = ThreadPool::new(2).unwrap();
        let total = AtomicUsize::new(0);
        for i in 0..20_000 {
            pool.for_each_chunk(2 + i % 5, &|_, c| {
                total.fetch_add(c + 1, Ordering::Relaxed);
            });
        }
        let want: usize = (0..20_000).map(|i| (2 + i % 5) * (3 + i % 5) / 2).sum();
        assert_eq!(total.load(Ordering::Relaxed), want);
    }
}
