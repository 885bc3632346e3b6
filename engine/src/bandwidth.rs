//! A short probe of the machine's memory read bandwidth, the ceiling of decode speed.
//!
//! Decoding a token reads every weight matrix once, so tokens per second can never exceed read
//! bandwidth divided by the bytes a token reads. `bench` measures that bandwidth at start, with
//! one thread and with the threads it runs, so each result can be shown as a share of its bound.
//! The probe sums a buffer far larger than any CPU cache, allocated and written once (so page
//! faults are not timed), and keeps the best of a few passes: the least disturbed one.

use std::time::Instant;

/// Buffer size `bench` probes with: far beyond the last-level cache of any CPU sparsetop runs on,
/// small enough to take a fraction of a second.
pub const DEFAULT_PROBE_BYTES: usize = 256 << 20;

/// A buffer to read, allocated and touched once.
pub struct Probe {
    buf: Vec<u64>,
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    pub threads: usize,
    /// Best bytes per second over the passes.
    pub bytes_per_s: f64,
    /// Sum of the buffer's words as read (proves every word was read exactly once).
    pub checksum: u64,
}

impl Probe {
    /// Allocates about `bytes` and writes every word (word i holds i), so no page fault is timed.
    pub fn new(bytes: usize) -> Self {
        let n = (bytes / 8).max(1024);
        Probe {
            buf: (0..n as u64).collect(),
        }
    }

    /// Bytes the buffer holds.
    pub fn bytes(&self) -> usize {
        self.buf.len() * 8
    }

    /// Reads the whole buffer with `threads` threads (each a contiguous share), `passes` times,
    /// and reports the fastest pass.
    pub fn measure(&self, threads: usize, passes: usize) -> Measurement {
        let threads = threads.max(1);
        let share = self.buf.len().div_ceil(threads);
        let mut best = f64::INFINITY;
        let mut checksum = 0;
        for _ in 0..passes.max(1) {
            let t0 = Instant::now();
            checksum = std::thread::scope(|s| {
                let handles: Vec<_> = self
                    .buf
                    .chunks(share)
                    .map(|c| s.spawn(move || sum(c)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a probe thread cannot panic"))
                    .fold(0u64, u64::wrapping_add)
            });
            best = best.min(t0.elapsed().as_secs_f64());
        }
        Measurement {
            threads,
            bytes_per_s: self.bytes() as f64 / best.max(1e-9),
            checksum,
        }
    }
}

/// Wrapping sum of the words, with independent accumulators so the loop is bound by loads, not
/// by one chain of additions (the compiler turns it into wide vector adds).
fn sum(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut chunks = words.chunks_exact(8);
    for c in &mut chunks {
        for (a, &w) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(w);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(0u64, |a, &w| a.wrapping_add(w));
    std::hint::black_box(acc.iter().fold(tail, |a, &w| a.wrapping_add(w)))
}

/// Read bandwidth with each of `threads` (duplicates measured once), best of three passes over a
/// buffer of [`DEFAULT_PROBE_BYTES`], freed before returning.
pub fn read_bandwidth(threads: &[usize]) -> Vec<Measurement> {
    let probe = Probe::new(DEFAULT_PROBE_BYTES);
    let mut seen: Vec<usize> = threads.iter().map(|&t| t.max(1)).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.into_iter().map(|t| probe.measure(t, 3)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_is_read_once_whatever_the_thread_count() {
        let p = Probe::new(1 << 20);
        let n = p.buf.len() as u64;
        let expected = n * (n - 1) / 2;
        for t in [1, 2, 3, 7] {
            assert_eq!(p.measure(t, 1).checksum, expected, "{t} threads");
        }
    }

    #[test]
    fn bandwidth_is_plausible_and_more_threads_do_not_make_it_collapse() {
        // 64 MiB: past the caches of the machines this runs on, yet quick.
        let p = Probe::new(64 << 20);
        let one = p.measure(1, 3).bytes_per_s;
        // Any real machine reads between 100 MB/s and 10 TB/s.
        assert!((1e8..1e13).contains(&one), "{one} B/s with one thread");
        let two = p.measure(2, 3).bytes_per_s;
        assert!((1e8..1e13).contains(&two), "{two} B/s with two threads");
        // Two threads read at least about as fast as one (the machine may be shared, hence the
        // slack), and not impossibly faster.
        assert!(
            two > 0.6 * one && two < 2.5 * one,
            "1 thread {one}, 2 threads {two}"
        );
    }
}
