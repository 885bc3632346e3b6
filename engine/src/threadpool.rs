//! A small persistent thread pool built for the forward pass's many short parallel sections.
//!
//! Decode runs a couple of hundred parallel operations per token, each lasting tens of
//! microseconds, so the cost of starting one must be far below that. Workers here wait for work by
//! spinning on a generation counter for a short while (tens of microseconds), which makes a dispatch
//! cost well under a microsecond while the engine is busy, and then fall asleep on a condition
//! variable so an idle engine (a person typing in the TUI) uses no CPU.

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

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// The current job; written by the caller before `generation` is bumped, read by workers
    /// after they observe the bump.
    job: UnsafeCell<Option<Job>>,
    generation: AtomicU64,
    /// Workers that have not finished the current job.
    pending: AtomicUsize,
    /// Set when a worker's job panicked.
    panicked: AtomicBool,
    shutdown: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is only written while no worker reads it (between jobs, ordered by `generation` and
// `pending`), and the closure it points to is `Sync`.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// A fixed set of worker threads; the calling thread takes part as thread 0.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    n_threads: usize,
}

impl ThreadPool {
    /// A pool of `n_threads` (at least 1) counting the caller: `n_threads - 1` OS threads are spawned.
    pub fn new(n_threads: usize) -> std::io::Result<Self> {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            generation: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut workers = Vec::with_capacity(n_threads - 1);
        for idx in 1..n_threads {
            let s = shared.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("sparsetop-worker-{idx}"))
                    .spawn(move || worker(s, idx))?,
            );
        }
        Ok(ThreadPool {
            shared,
            workers,
            n_threads,
        })
    }

    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Runs `f(thread_index)` once on every thread of the pool (the caller is index 0) and returns
    /// when all have finished. A panic in any of them is re-raised here.
    pub fn broadcast(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.n_threads == 1 {
            f(0);
            return;
        }
        let s = &*self.shared;
        // SAFETY: no worker reads `job` now: the previous job's `pending` reached zero before the
        // previous `broadcast` returned. The pointer's lifetime is erased, but it is cleared below
        // before `f` can go out of scope, and workers only use it before decrementing `pending`.
        unsafe {
            let job: Job = std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f);
            *s.job.get() = Some(job);
        }
        s.pending.store(self.n_threads - 1, Ordering::Relaxed);
        s.generation.fetch_add(1, Ordering::Release);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        let mut spins = 0u32;
        while s.pending.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(YIELD_EVERY) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: every worker is done with the job.
        unsafe { *s.job.get() = None };
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if s.panicked.swap(false, Ordering::AcqRel) {
            panic!("a sparsetop worker thread panicked");
        }
    }

    /// Runs `f(chunk)` for every `chunk` in `0..n_chunks`, chunks handed out dynamically so a
    /// thread slowed down by other work on the machine does not hold up the rest.
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
        let next = AtomicUsize::new(0);
        self.broadcast(&|tid| loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= n_chunks {
                break;
            }
            f(tid, c);
        });
    }
}

fn worker(s: Arc<Shared>, idx: usize) {
    let mut seen = 0u64;
    loop {
        // Wait for a new generation: spin first, then sleep.
        let mut spins = 0u32;
        let gen = loop {
            let g = s.generation.load(Ordering::Acquire);
            if g != seen {
                break g;
            }
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            spins += 1;
            if spins < SPIN_LIMIT {
                // On a machine with more runnable threads than cores, a spinning worker would
                // take the core from the thread doing the work it waits for: yield now and then.
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
        // SAFETY: the caller set `job` before bumping `generation` (Release/Acquire) and keeps the
        // closure alive until `pending` reaches zero.
        let job = unsafe { *s.job.get() };
        if let Some(job) = job {
            let f = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| f(idx))).is_err() {
                s.panicked.store(true, Ordering::Release);
            }
        }
        s.pending.fetch_sub(1, Ordering::Release);
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
    fn every_thread_runs_once_per_broadcast() {
        let pool = ThreadPool::new(3).unwrap();
        for _ in 0..1000 {
            let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            pool.broadcast(&|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn chunks_cover_the_range_exactly_once() {
        let pool = ThreadPool::new(2).unwrap();
        for n in [0, 1, 2, 7, 100] {
            let seen: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            pool.for_each_chunk(n, &|_, c| {
                seen[c].fetch_add(1, Ordering::Relaxed);
            });
            assert!(seen.iter().all(|h| h.load(Ordering::Relaxed) == 1), "n={n}");
        }
    }

    #[test]
    fn sleeping_workers_wake_up() {
        let pool = ThreadPool::new(2).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let count = AtomicUsize::new(0);
        pool.broadcast(&|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_worker_panic_reaches_the_caller() {
        let pool = ThreadPool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.broadcast(&|i| {
                if i == 1 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        // The pool still works afterwards.
        let count = AtomicUsize::new(0);
        pool.broadcast(&|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }
}
