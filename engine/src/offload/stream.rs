//! Dense FFN layers under a memory budget: as many whole layers as the budget holds stay
//! resident, the others stream from the model file through two staging buffers, the next layer
//! loading while this one computes (PowerInfer-2's prefill: sequential reads of the next layer
//! while one computes). Reads bypass the page cache, so nothing but the staging buffers holds
//! streamed weights.
//!
//! This is the path of prefill and of decode at sparsity 0: it computes with the model's own
//! matrices, so its results are bit-identical to the in-memory dense path. With sparse decode
//! it serves prefill alone, through one staging buffer: reads then no longer overlap compute, but
//! the layer's worth of memory saved goes to the neuron cache, which every decoded token uses.

use super::io::{Completion, IoConfig, IoEngine, ReadRequest};
use crate::error::Result;
use crate::model::weights::{LayerWeights, Matrix};
use std::path::Path;

/// The three FFN matrices of one layer, rebased into a buffer holding `[gate | up | down]`.
#[derive(Clone, Copy)]
pub struct LayerMats {
    pub gate: Matrix,
    pub up: Matrix,
    pub down: Matrix,
}

/// One staging buffer and the reads filling it.
struct Staging {
    buf: Box<[u8]>,
    /// Layer the buffer holds or is loading.
    layer: Option<usize>,
    /// Whether reads into it may still be pending.
    loading: bool,
    done: Box<[Completion; 3]>,
}

/// Counters since the stream was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Layer uses served by resident layers.
    pub resident_uses: u64,
    /// Layer uses served by a staging buffer (read from the file).
    pub streamed_uses: u64,
    /// Of those, how many were already loaded or loading when asked for (prefetched).
    pub prefetched: u64,
    /// Bytes asked of the file.
    pub bytes_read: u64,
    /// Time spent waiting for reads, microseconds.
    pub wait_us: u64,
}

/// Streams a model's FFN layers from its file.
pub struct LayerStream {
    // Dropped first: stopping the readers before the buffers they write into go away.
    io: IoEngine,
    /// Per layer: file offsets of gate, up and down.
    parts: Vec<[(u64, usize); 3]>,
    mats: Vec<LayerMats>,
    resident: Vec<Option<Box<[u8]>>>,
    /// One or two buffers.
    staging: Vec<Staging>,
    pub stats: StreamStats,
}

/// The bytes of one layer's FFN matrices (what a staging buffer holds).
pub fn layer_bytes(l: &LayerWeights) -> usize {
    l.gate.bytes() + l.up.bytes() + l.down.bytes()
}

impl LayerStream {
    /// Opens `path` (the model file) for streaming through `buffers` staging buffers (1 or 2: with
    /// one, a layer's reads cannot overlap the previous layer's compute), and reads up to
    /// `resident_bytes` of whole layers into memory now, spread evenly over the depth so streamed
    /// layers alternate with resident ones and reads overlap more compute.
    pub fn new(
        path: &Path,
        layers: &[LayerWeights],
        resident_bytes: u64,
        buffers: usize,
        io: IoConfig,
    ) -> Result<Self> {
        assert!(matches!(buffers, 1 | 2), "one or two staging buffers");
        let io = IoEngine::open(path, io)?;
        let max = layers.iter().map(layer_bytes).max().unwrap_or(0);
        let mut parts = Vec::with_capacity(layers.len());
        let mut mats = Vec::with_capacity(layers.len());
        for l in layers {
            let (g, u, d) = (l.gate.bytes(), l.up.bytes(), l.down.bytes());
            parts.push([
                (l.gate.offset as u64, g),
                (l.up.offset as u64, u),
                (l.down.offset as u64, d),
            ]);
            mats.push(LayerMats {
                gate: Matrix {
                    offset: 0,
                    ..l.gate
                },
                up: Matrix { offset: g, ..l.up },
                down: Matrix {
                    offset: g + u,
                    ..l.down
                },
            });
        }
        let n_res = if max == 0 {
            0
        } else {
            ((resident_bytes / max as u64) as usize).min(layers.len())
        };
        let staging = || Staging {
            buf: vec![0u8; max].into_boxed_slice(),
            layer: None,
            loading: false,
            done: Box::new([Completion::new(), Completion::new(), Completion::new()]),
        };
        let mut s = LayerStream {
            io,
            parts,
            mats,
            resident: (0..layers.len()).map(|_| None).collect(),
            staging: (0..buffers).map(|_| staging()).collect(),
            stats: StreamStats::default(),
        };
        for k in 0..n_res {
            // Evenly spaced: layer ⌊(k + ½)·n / n_res⌋.
            let li = ((2 * k + 1) * layers.len()) / (2 * n_res);
            let mut buf = vec![0u8; layer_bytes(&layers[li])].into_boxed_slice();
            let done: Box<[Completion; 3]> =
                Box::new([Completion::new(), Completion::new(), Completion::new()]);
            let reqs = s.requests(li, &mut buf, &done, false);
            // SAFETY: buf and done outlive the reads, which are waited for right here.
            unsafe { s.io.submit(&reqs) };
            for d in done.iter() {
                s.io.wait(d)?;
            }
            s.resident[li] = Some(buf);
        }
        Ok(s)
    }

    /// Layers kept in memory.
    pub fn resident_layers(&self) -> usize {
        self.resident.iter().filter(|r| r.is_some()).count()
    }

    /// Bytes held: resident layers and the staging buffers.
    pub fn bytes(&self) -> usize {
        self.resident
            .iter()
            .flatten()
            .map(|b| b.len())
            .sum::<usize>()
            + self.staging.iter().map(|s| s.buf.len()).sum::<usize>()
    }

    /// Bytes of the staging buffers.
    pub fn staging_bytes(&self) -> usize {
        self.staging.iter().map(|s| s.buf.len()).sum()
    }

    /// The I/O engine (for its counters).
    pub fn io(&self) -> &IoEngine {
        &self.io
    }

    fn requests(
        &self,
        li: usize,
        buf: &mut [u8],
        done: &[Completion; 3],
        prefetch: bool,
    ) -> [ReadRequest; 3] {
        let mut at = 0;
        let mut reqs = [ReadRequest {
            offset: 0,
            len: 0,
            dest: std::ptr::null_mut(),
            done: &done[0],
            prefetch,
        }; 3];
        for (k, &(off, len)) in self.parts[li].iter().enumerate() {
            reqs[k] = ReadRequest {
                offset: off,
                len: len as u32,
                dest: buf[at..at + len].as_mut_ptr(),
                done: &done[k],
                prefetch,
            };
            at += len;
        }
        reqs
    }

    /// Starts loading layer `li` into staging buffer `k` (after any reads still landing there).
    fn load(&mut self, k: usize, li: usize, prefetch: bool) {
        // Reads still landing for a layer no longer wanted: their result does not matter.
        let _ = self.settle(k);
        let st = &mut self.staging[k];
        st.layer = Some(li);
        st.loading = true;
        let mut buf = std::mem::take(&mut st.buf);
        let reqs = self.requests(li, &mut buf, &self.staging[k].done, prefetch);
        self.staging[k].buf = buf;
        self.stats.bytes_read += self.parts[li].iter().map(|p| p.1 as u64).sum::<u64>();
        // SAFETY: the buffer's heap block and the completions are owned by this stream, are not
        // touched until `settle` has seen every read finish, and outlive the reads (the I/O
        // engine is dropped, joining its readers, before them).
        unsafe { self.io.submit(&reqs) };
    }

    /// Waits for buffer `k`'s reads, returning the first failure.
    fn settle(&mut self, k: usize) -> Result<()> {
        let st = &mut self.staging[k];
        if !st.loading {
            return Ok(());
        }
        st.loading = false;
        let t0 = std::time::Instant::now();
        let mut r = Ok(());
        for d in st.done.iter() {
            if let Err(e) = self.io.wait(d) {
                if r.is_ok() {
                    r = Err(e);
                }
            }
        }
        self.stats.wait_us += t0.elapsed().as_micros() as u64;
        if r.is_err() {
            st.layer = None;
        }
        r
    }

    /// The next streamed (not resident) layer after `li`, wrapping to the next token's first.
    fn next_streamed(&self, li: usize) -> Option<usize> {
        let n = self.resident.len();
        (1..=n)
            .map(|d| (li + d) % n)
            .find(|&l| self.resident[l].is_none())
    }

    /// Layer `li`'s `[gate | up | down]` bytes and matrices rebased into them, waiting for its
    /// reads if needed, and starting the next streamed layer's reads.
    pub fn layer(&mut self, li: usize) -> Result<(&[u8], LayerMats)> {
        let mats = self.mats[li];
        if self.resident[li].is_some() {
            self.stats.resident_uses += 1;
            if let Some(nx) = self.next_streamed(li) {
                self.prefetch(nx, None);
            }
            return Ok((self.resident[li].as_deref().expect("checked"), mats));
        }
        self.stats.streamed_uses += 1;
        let k = match self.staging.iter().position(|s| s.layer == Some(li)) {
            Some(k) => {
                self.stats.prefetched += 1;
                k
            }
            None => {
                // Not prefetched: load it into the buffer not holding the next layer.
                let nx = self.next_streamed(li);
                let k = if self.staging.len() == 2
                    && self.staging[0].layer.is_some()
                    && self.staging[0].layer == nx
                {
                    1
                } else {
                    0
                };
                self.load(k, li, false);
                k
            }
        };
        // The other buffer held the layer computed last, now done with: start the next streamed
        // layer's reads before waiting for this one's, so the disk never waits for a layer
        // boundary. Measured under an 85 MiB limit (`--mem-budget 69M`, dense decode, 43 MB read
        // a token): 15.7 -> 16.6-17.2 tok/s, against ~17 that the disk's ~730 MB/s allows.
        if let Some(nx) = self.next_streamed(li) {
            if nx != li {
                self.prefetch(nx, Some(k));
            }
        }
        self.settle(k)?;
        Ok((&self.staging[k].buf[..], mats))
    }

    /// Starts loading layer `li` into a staging buffer other than `busy`, unless it is there or
    /// there is no other.
    fn prefetch(&mut self, li: usize, busy: Option<usize>) {
        if self.staging.iter().any(|s| s.layer == Some(li)) {
            return;
        }
        if let Some(k) = (0..self.staging.len()).find(|&k| Some(k) != busy) {
            self.load(k, li, true);
        }
    }
}
