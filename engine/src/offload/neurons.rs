//! Sparse decode under a memory budget: FFN neurons come from the neuron bundle through a
//! segmented cache.
//!
//! * **Hot region**: per layer, the hottest ranks (the bundle is hot-first, so a prefix), read
//!   once at start and never evicted.
//! * **Cold region**: fixed slots of one record each, replaced by CLOCK ([`ClockCache`]); the
//!   current layer's needed set and the next layer's prefetched records are protected.
//!
//! Per layer step, [`NeuronStore::prepare`] resolves every needed rank to the hot region or a cold
//! slot, issues demand reads for the misses and prefetch reads for the next layer's predicted set,
//! and compute then takes records as their reads complete ([`NeuronStore::record`]), chunk by
//! chunk, so compute overlaps the reads still in flight. All memory is allocated up front.
//!
//! Every record is checked against its cluster's CRC32 on the I/O threads before compute sees it
//! ([`ClusterCheck`]): a damaged cluster fails the step with an error naming the file, the layer
//! and the cluster, and its bytes are never used.

use super::bundle::{BundleInfo, BundleLayout};
use super::cache::ClockCache;
use super::cluster_check::ClusterCheck;
use super::io::{Completion, CompletionState, IoConfig, IoEngine, ReadRequest};
use crate::error::{Error, Result};
use std::sync::Arc;

/// Set (to anything) to read the bundle without checking its cluster CRCs. Only for measuring
/// what the check costs (`sparsetop bench` with and without it): it lets damaged data through.
pub const UNCHECKED_ENV: &str = "SPARSETOP_BENCH_UNCHECKED_READS";

/// Whether reads skip the CRC check ([`UNCHECKED_ENV`]).
pub fn unchecked_reads() -> bool {
    std::env::var_os(UNCHECKED_ENV).is_some()
}

/// Where a rank's record is for the current step.
const LOC_NONE: u32 = u32::MAX;
const LOC_HOT: u32 = u32::MAX - 1;
/// Needed but not cached: a slot is claimed for it once every hit is protected.
const LOC_MISS: u32 = u32::MAX - 2;

/// Counters since the store was made (or reset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NeuronStats {
    /// Needed records found in the hot region.
    pub hot_hits: u64,
    /// Needed records found in the cold region.
    pub cold_hits: u64,
    /// Needed records read on demand.
    pub misses: u64,
    /// Records read ahead for the next layer; later needed; evicted unneeded.
    pub prefetched: u64,
    pub prefetch_used: u64,
    pub prefetch_wasted: u64,
    /// Record bytes asked of the file.
    pub bytes_read: u64,
}

impl NeuronStats {
    /// Needed records that were already cached (not counting those only there because they were
    /// read ahead for this step).
    pub fn cache_hits(&self) -> u64 {
        self.hot_hits + self.cold_hits - self.prefetch_used.min(self.cold_hits)
    }

    /// Share of needed records that were cached before the step asked for them.
    pub fn hit_rate(&self) -> f64 {
        let all = self.hot_hits + self.cold_hits + self.misses;
        self.cache_hits() as f64 / all.max(1) as f64
    }
}

/// A model's FFN neurons under a budget.
pub struct NeuronStore {
    // Dropped first: the readers stop before the memory they fill goes away.
    io: IoEngine,
    layout: BundleLayout,
    hot_n: usize,
    hot: Vec<Box<[u8]>>,
    cold: Box<[u8]>,
    done: Box<[Completion]>,
    inflight: Vec<bool>,
    /// Slot holds a prefetched record not yet used.
    prefetched: Vec<bool>,
    clock: ClockCache,
    /// Rank → location for the layer being computed.
    loc: Vec<u32>,
    reqs: Vec<ReadRequest>,
    pub stats: NeuronStats,
}

// SAFETY: the raw pointers in `reqs` are only scratch between building and submitting requests on
// the owning thread; the shared parts (records, completions) are read-only or atomic.
unsafe impl Send for NeuronStore {}
unsafe impl Sync for NeuronStore {}

impl NeuronStore {
    /// Cold slots needed at least: one layer's worth, so a layer's misses always fit. The next
    /// layer's read-ahead takes what the current layer leaves free (best effort), so a tight
    /// budget loses some read-ahead rather than refusing sparse decode (two layers' worth, as
    /// before, put sparse decode of SmolLM2 at 85 MiB 1.5 MiB over its budget).
    pub fn min_cold_slots(layout: &BundleLayout) -> usize {
        layout.n_ff
    }

    /// Opens the bundle and lays out the regions: the cold region's [`Self::min_cold_slots`]
    /// (the caller counts them in the fixed region), and `spare` bytes beside them. Of those, up to
    /// a second layer's worth of cold slots comes first, so the next layer's records can be read
    /// while this one computes; the hot region (the same hottest prefix in every layer, read now)
    /// gets the rest.
    pub fn new(info: &BundleInfo, spare: u64, io: IoConfig) -> Result<Self> {
        let layout = info.layout;
        let io = IoConfig {
            check: (!unchecked_reads()).then(|| Arc::new(ClusterCheck::for_bundle(info))),
            ..io
        };
        let rec = layout.record_bytes;
        let extra = (spare / rec as u64).min(layout.n_ff as u64);
        let cold_slots = Self::min_cold_slots(&layout) + extra as usize;
        let hot_bytes = spare - extra * rec as u64;
        let hot_n =
            ((hot_bytes / (rec as u64 * layout.n_layer.max(1) as u64)) as usize).min(layout.n_ff);
        let cold_slots = cold_slots.max(1);
        let io = IoEngine::open(&info.path, io)?;
        let mut s = NeuronStore {
            io,
            layout,
            hot_n,
            hot: (0..layout.n_layer)
                .map(|_| vec![0u8; hot_n * rec].into_boxed_slice())
                .collect(),
            cold: vec![0u8; cold_slots * rec].into_boxed_slice(),
            done: (0..cold_slots).map(|_| Completion::new()).collect(),
            inflight: vec![false; cold_slots],
            prefetched: vec![false; cold_slots],
            clock: ClockCache::new(cold_slots, layout.n_layer * layout.n_ff),
            loc: vec![LOC_NONE; layout.n_ff],
            reqs: Vec::with_capacity(2 * layout.n_ff),
            stats: NeuronStats::default(),
        };
        // The hot region: one completion per layer is enough, as each layer is waited for whole.
        let done: Vec<Completion> = (0..hot_n).map(|_| Completion::new()).collect();
        for l in 0..layout.n_layer {
            let base = s.hot[l].as_mut_ptr();
            let reqs: Vec<ReadRequest> = (0..hot_n)
                .map(|r| ReadRequest {
                    offset: layout.record_offset(l, r),
                    len: rec as u32,
                    // SAFETY: r < hot_n, inside the layer's hot buffer.
                    dest: unsafe { base.add(r * rec) },
                    done: &done[r],
                    prefetch: false,
                })
                .collect();
            // SAFETY: buffers and completions outlive the reads, waited for just below.
            unsafe { s.io.submit(&reqs) };
            for d in &done {
                s.io.wait(d)?;
            }
        }
        Ok(s)
    }

    /// Records kept per layer in the hot region.
    pub fn hot_per_layer(&self) -> usize {
        self.hot_n
    }

    pub fn cold_slots(&self) -> usize {
        self.done.len()
    }

    /// Bytes held by both regions.
    pub fn bytes(&self) -> usize {
        self.hot.iter().map(|h| h.len()).sum::<usize>() + self.cold.len()
    }

    pub fn hot_bytes(&self) -> usize {
        self.hot.iter().map(|h| h.len()).sum()
    }

    pub fn cold_bytes(&self) -> usize {
        self.cold.len()
    }

    pub fn io(&self) -> &IoEngine {
        &self.io
    }

    fn key(&self, layer: usize, rank: usize) -> u32 {
        (layer * self.layout.n_ff + rank) as u32
    }

    /// Whether a slot's read may still be landing (then it must not be reused).
    fn busy(done: &[Completion], inflight: &[bool], s: usize) -> bool {
        inflight[s] && done[s].state() == CompletionState::Pending
    }

    /// Resolves the ranks `layer` needs (`need(rank)`), reading the missing ones, and reads ahead
    /// the ranks `next_need` selects in `next_layer`. Fails when the cold region cannot hold the
    /// layer's misses (a configuration error: it holds a layer).
    pub fn prepare(
        &mut self,
        layer: usize,
        need: &dyn Fn(usize) -> bool,
        next: Option<(usize, &dyn Fn(usize) -> bool)>,
    ) -> Result<()> {
        self.clock.next_epoch();
        self.reqs.clear();
        let rec = self.layout.record_bytes;
        let n_ff = self.layout.n_ff;
        // First every needed record already cached (protecting its slot this step), then the
        // misses: claiming a slot for a miss must not evict a record this layer has yet to look
        // up (one read ahead at the last step, say).
        let mut any_miss = false;
        for rank in 0..n_ff {
            if !need(rank) {
                self.loc[rank] = LOC_NONE;
                continue;
            }
            if rank < self.hot_n {
                self.loc[rank] = LOC_HOT;
                self.stats.hot_hits += 1;
                continue;
            }
            let key = self.key(layer, rank);
            if let Some(s) = self.clock.lookup(key) {
                if self.done[s].state() == CompletionState::Failed {
                    // A failed read's slot holds nothing: read it again.
                    self.clock.remove(key);
                } else {
                    if std::mem::take(&mut self.prefetched[s]) {
                        self.stats.prefetch_used += 1;
                    }
                    self.loc[rank] = s as u32;
                    self.stats.cold_hits += 1;
                    continue;
                }
            }
            self.loc[rank] = LOC_MISS;
            any_miss = true;
        }
        if any_miss {
            for rank in self.hot_n..n_ff {
                if self.loc[rank] == LOC_MISS {
                    let s = self.claim(self.key(layer, rank), layer, rank, false)?;
                    self.loc[rank] = s as u32;
                    self.stats.misses += 1;
                }
            }
        }
        if let Some((nl, next_need)) = next {
            for rank in self.hot_n..n_ff {
                let key = self.key(nl, rank);
                if !next_need(rank) || self.clock.contains(key) {
                    continue;
                }
                // Read-ahead is best effort: stop when the cold region is full of protected work.
                match self.claim(key, nl, rank, true) {
                    Ok(s) => {
                        self.prefetched[s] = true;
                        self.stats.prefetched += 1;
                    }
                    Err(_) => break,
                }
            }
        }
        self.stats.bytes_read += (self.reqs.len() * rec) as u64;
        // SAFETY: every request targets a distinct claimed slot (protected from eviction this
        // epoch and not reused while busy) of memory this store owns, with its own completion.
        unsafe { self.io.submit(&self.reqs) };
        Ok(())
    }

    /// Gives `key` a cold slot and queues its read.
    fn claim(&mut self, key: u32, layer: usize, rank: usize, prefetch: bool) -> Result<usize> {
        let (done, inflight) = (&self.done, &self.inflight);
        let Some(ins) = self.clock.insert(key, &|s| Self::busy(done, inflight, s)) else {
            return Err(Error::Invalid(format!(
                "the neuron cache's cold region ({} slots) cannot hold one layer's needed neurons: raise the memory budget",
                self.done.len()
            )));
        };
        let s = ins.slot;
        if std::mem::take(&mut self.prefetched[s]) {
            self.stats.prefetch_wasted += 1;
        }
        let rec = self.layout.record_bytes;
        self.inflight[s] = true;
        self.reqs.push(ReadRequest {
            offset: self.layout.record_offset(layer, rank),
            len: rec as u32,
            dest: self.cold[s * rec..(s + 1) * rec].as_mut_ptr(),
            done: &self.done[s],
            prefetch,
        });
        Ok(s)
    }

    /// Where the record of `rank` is for the layer last prepared: None when it was not needed,
    /// `Ok` the hot record, `Err` the cold slot, whose bytes are taken only once its read landed.
    fn locate(&self, layer: usize, rank: usize) -> Option<std::result::Result<&[u8], usize>> {
        let rec = self.layout.record_bytes;
        match self.loc[rank] {
            LOC_NONE => None,
            LOC_HOT => Some(Ok(&self.hot[layer][rank * rec..(rank + 1) * rec])),
            s => Some(Err(s as usize)),
        }
    }

    fn cold_record(&self, s: usize) -> &[u8] {
        let rec = self.layout.record_bytes;
        &self.cold[s * rec..(s + 1) * rec]
    }

    /// The record of `rank` for the layer last prepared, waiting for its read; `None` when it was
    /// not needed.
    pub fn record(&self, layer: usize, rank: usize) -> Result<Option<&[u8]>> {
        match self.locate(layer, rank) {
            None => Ok(None),
            Some(Ok(r)) => Ok(Some(r)),
            Some(Err(s)) => {
                self.io.wait(&self.done[s])?;
                Ok(Some(self.cold_record(s)))
            }
        }
    }

    /// The record of `rank` if it can be read without waiting (hot, or a cold read that has
    /// landed), for starting its loads ahead of use; None otherwise.
    pub fn record_if_ready(&self, layer: usize, rank: usize) -> Option<&[u8]> {
        match self.locate(layer, rank)? {
            Ok(r) => Some(r),
            Err(s) => (self.done[s].state() == CompletionState::Done).then(|| self.cold_record(s)),
        }
    }

    /// Splits a record into its gate row, up row and down column.
    pub fn split<'a>(&self, record: &'a [u8]) -> (&'a [u8], &'a [u8], &'a [u8]) {
        self.layout.split_record(record)
    }
}
