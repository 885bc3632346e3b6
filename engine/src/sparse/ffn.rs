//! The sparse FFN of decode: compute only the neurons that fire for this token.
//!
//! For a SwiGLU FFN `down · (act(gate·x) ⊙ (up·x))`, neuron `i` contributes `a_i · down[:, i]` with
//! `a_i = act(g_i) · u_i`. CATS/TEAL observe that |act(g_i)| is a good proxy for |a_i|: below a
//! per-layer threshold calibrated for a target sparsity, the neuron is skipped, so its `up` row
//! and its `down` column are never read. With the predictor, a cheap low-rank estimate of `g`
//! skips most gate rows too. ReLU-family models (exact zeros) are the special case of threshold 0.
//!
//! All neurons of a layer are split over the pool in chunks; each chunk accumulates its share of
//! the output in its own buffer, and the buffers are summed in order at the end. Under a memory
//! budget a first parallel section goes through the neurons' records in rank order (the order
//! the bundle stores and the cache reads them), computing act(gate) and a as each read lands, so
//! compute overlaps the reads; the adds then go by blocks of the model's order.

use super::down_cols::{ColKind, DownCols, BLOCK};
use super::level::check_level;
use super::profile::ProfileData;
use crate::error::Result;
use crate::model::weights::LayerWeights;
use crate::model::Model;
use crate::offload::neurons::NeuronStore;
use crate::ops::norm::silu;
use crate::ops::per_thread::{PerThread, SendPtr};
use crate::ops::Precision;
use crate::quant::{self, FloatKernels};
use crate::telemetry::HEAT_BANDS;
use crate::threadpool::ThreadPool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Neurons per chunk handed to a thread (96 and 192 measured within noise of each other; 192
/// gives each of two threads four chunks to balance, and the pipeline below restarts less often).
const CHUNK: usize = 192;
/// Blocks between choosing a block's neurons (and starting the loads of their columns and scales)
/// and adding its columns. One and two measured within noise of each other (sparse decode at 0.5
/// 1.03-1.08x dense either way); one keeps fewer lines in flight per thread.
const LAG: usize = 1;
/// Every this many tokens, recall of the predictor is measured against the true gate.
pub const RECALL_EVERY: u64 = 16;

/// Share of the target sparsity applied to |act(gate)| alone, before `up` is read.
///
/// Measured on SmolLM2-135M (GPL-3 text, c=512, 50% of neurons skipped by top-k): choosing by
/// |act(gate)| alone raises perplexity 18.3 → 27.0, by |act(gate)·up| only to 18.9. A small model's
/// `up` values vary too much per token for the gate to decide alone, so the gate only screens out
/// the weakest neurons (0.4 × the target: 20% at 0.5, which costs +0.1 perplexity) and the rest
/// are chosen by |a| against the calibrated quantile of |a|.
pub const GATE_SHARE: f32 = 0.4;

/// A layer's two thresholds for the current level.
#[derive(Debug, Clone, Copy, Default)]
struct Thresholds {
    /// On |act(gate)|: below it `up` is not read.
    gate: f32,
    /// On |a| = |act(gate)·up|: below it `down` is not read.
    act: f32,
}

/// Per-thread scratch: a dequantized row (exact mode).
struct Lane {
    row: Vec<f32>,
}

/// One chunk's share of a layer: its output partial sum and counters. Partials are kept per
/// chunk, not per thread, and summed in chunk order, so the result does not depend on which
/// thread took which chunk: greedy decode is reproducible run to run.
struct Slot {
    partial: Vec<f32>,
    gate_rows: u32,
    up_rows: u32,
    active: u32,
    /// Blocks of 32 with an active neuron (their down scales were read).
    blocks: u32,
    /// Active neurons per band of the hot-first order.
    bands: [u32; HEAT_BANDS],
    /// Truly active neurons the predictor skipped (only counted on recall-sampling tokens).
    missed: u32,
}

/// Cumulative counters since the session started (or they were reset).
#[derive(Debug, Clone, Copy, Default)]
pub struct SparseStats {
    pub tokens: u64,
    pub gate_bytes: u64,
    pub up_bytes: u64,
    pub down_bytes: u64,
    pub predictor_bytes: u64,
    /// Active neurons summed over layers and tokens.
    pub active: u64,
    /// Predictor recall samples: truly active found / truly active.
    pub recall_found: u64,
    pub recall_total: u64,
}

impl SparseStats {
    /// FFN weight bytes read per token on average.
    pub fn bytes_per_token(&self) -> f64 {
        (self.gate_bytes + self.up_bytes + self.down_bytes + self.predictor_bytes) as f64
            / self.tokens.max(1) as f64
    }
}

/// Settings of sparse decode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparsityConfig {
    /// Target share of inactive neurons, 0 to [`super::level::MAX_LEVEL`] (0 = dense and exact).
    pub level: f32,
    /// Use the low-rank predictor to skip gate rows too.
    pub predictor: bool,
}

/// The sparse FFN's state for one session.
pub struct SparseFfn {
    pub profile: Arc<ProfileData>,
    pub config: SparsityConfig,
    thresholds: Vec<Thresholds>,
    pred_thresholds: Vec<f32>,
    /// Per layer, `down` by neuron (in memory) or its scales alone (under a budget).
    down: Vec<DownCols>,
    /// Per layer, the rank in the hot-first order of each neuron.
    rank_of: Vec<u32>,
    /// Per layer and block of 32 neurons, for each band, the block's neurons in that band as
    /// bits (the heat strip's counts are then a popcount per band and block).
    band_masks: Vec<u32>,
    lanes: PerThread<Lane>,
    slots: PerThread<Slot>,
    /// Activations converted for the gate and up kernels.
    act_gate: Vec<u8>,
    act_up: Vec<u8>,
    /// Under a budget, act(gate) and a of every neuron of the layer (by neuron), from the first
    /// pass over the records.
    sg_all: Vec<f32>,
    a_all: Vec<f32>,
    /// Predictor's rank-space projection of the input.
    z: Vec<f32>,
    z_next: Vec<f32>,
    /// Under a budget: by rank, the neurons predicted for this layer and the next.
    pred_mask: Vec<bool>,
    next_mask: Vec<bool>,
    /// Active neurons per layer for the last token.
    pub active_counts: Vec<u32>,
    /// Active neurons per layer and band of the hot-first order for the last token
    /// (`n_layer × HEAT_BANDS`, see [`crate::telemetry::SparsitySample::bands`]).
    pub band_counts: Vec<u32>,
    pub stats: SparseStats,
    tokens_seen: u64,
}

impl SparseFfn {
    /// Prepares sparse decode: checks the config against the profile and builds each layer's
    /// `down` columns ([`DownCols`]).
    pub fn new(
        profile: Arc<ProfileData>,
        config: SparsityConfig,
        model: &Model,
        n_threads: usize,
    ) -> Result<Self> {
        check_level(config.level)?;
        if config.predictor && !profile.has_predictor() {
            return Err(crate::Error::Invalid(
                "the sparsity profile has no predictor: run `sparsetop calibrate` with --rank above 0, or use --predictor off".into(),
            ));
        }
        let weights = &model.weights;
        let n_layer = weights.layers.len();
        let n_embd = weights.output_norm.len();
        let n_ff = profile.dims.n_ff;
        // Without the FFN in memory (a model opened for a budget) the columns come from the
        // bundle's records: only the scales are kept, read from the file around the page cache.
        let kind = ColKind::for_types(weights.layers.iter().map(|l| l.down.dtype));
        let down = weights
            .layers
            .iter()
            .map(|l| {
                if model.ffn_in_memory() {
                    let data = l.down.rows_data(model.file.bytes(), 0, l.down.rows);
                    DownCols::build(&l.down, data, kind, true)
                } else {
                    let mut data = Vec::with_capacity(l.down.bytes());
                    model
                        .file
                        .stream_range(l.down.offset, l.down.bytes(), &mut |b| {
                            data.extend_from_slice(b)
                        })?;
                    DownCols::build(&l.down, &data, kind, false)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let n_blocks = n_ff / BLOCK;
        let mut rank_of = vec![0u32; n_layer * n_ff];
        let mut band_masks = vec![0u32; n_layer * n_blocks * HEAT_BANDS];
        for li in 0..n_layer {
            for (k, &i) in profile.order(li).iter().enumerate() {
                let i = i as usize;
                rank_of[li * n_ff + i] = k as u32;
                let band = (k * HEAT_BANDS / n_ff).min(HEAT_BANDS - 1);
                let (b, j) = (i / BLOCK, i % BLOCK);
                band_masks[(li * n_blocks + b) * HEAT_BANDS + band] |= 1 << j;
            }
        }
        let l0 = &weights.layers[0];
        let gate_act = l0
            .gate
            .kernels
            .vec_dot_type
            .row_bytes(n_embd as u64)
            .unwrap_or(0) as usize;
        let up_act = l0
            .up
            .kernels
            .vec_dot_type
            .row_bytes(n_embd as u64)
            .unwrap_or(0) as usize;
        let mut s = SparseFfn {
            thresholds: vec![Thresholds::default(); n_layer],
            pred_thresholds: vec![0.0; n_layer],
            down,
            rank_of,
            band_masks,
            lanes: PerThread::new(n_threads, || Lane {
                row: vec![0.0; n_embd],
            }),
            slots: PerThread::new(weights.layers[0].gate.rows.div_ceil(CHUNK), || Slot {
                partial: vec![0.0; n_embd],
                gate_rows: 0,
                up_rows: 0,
                active: 0,
                blocks: 0,
                bands: [0; HEAT_BANDS],
                missed: 0,
            }),
            act_gate: vec![0; gate_act.max(4 * n_embd)],
            act_up: vec![0; up_act.max(4 * n_embd)],
            sg_all: vec![0.0; n_ff],
            a_all: vec![0.0; n_ff],
            z: vec![0.0; profile.dims.rank],
            z_next: vec![0.0; profile.dims.rank],
            pred_mask: vec![true; profile.dims.n_ff],
            next_mask: vec![true; profile.dims.n_ff],
            active_counts: vec![0; n_layer],
            band_counts: vec![0; n_layer * HEAT_BANDS],
            stats: SparseStats::default(),
            tokens_seen: 0,
            profile,
            config,
        };
        s.set_config(config)?;
        Ok(s)
    }

    /// Changes the target sparsity or predictor use (live, e.g. from the TUI's `/sparsity`).
    pub fn set_config(&mut self, config: SparsityConfig) -> Result<()> {
        check_level(config.level)?;
        if config.predictor && !self.profile.has_predictor() {
            return Err(crate::Error::Invalid(
                "the sparsity profile has no predictor".into(),
            ));
        }
        for l in 0..self.thresholds.len() {
            let gate_level = config.level * GATE_SHARE;
            self.thresholds[l] = Thresholds {
                gate: self.profile.gate_threshold(l, gate_level),
                act: self.profile.act_threshold(l, config.level),
            };
            self.pred_thresholds[l] = if config.predictor {
                self.profile.pred_threshold(l, config.level)
            } else {
                0.0
            };
        }
        self.config = config;
        Ok(())
    }

    /// Bytes of scratch buffers (not counting the `down` copies).
    pub fn scratch_bytes(&self) -> usize {
        self.lanes.bytes_with(|l| l.row.capacity() * 4)
            + self.slots.bytes_with(|s| s.partial.capacity() * 4)
            + self.act_gate.capacity()
            + self.act_up.capacity()
            + (self.z.capacity() + self.sg_all.capacity() + self.a_all.capacity()) * 4
    }

    /// Bytes held by `down` by neuron (columns and scales).
    pub fn extra_bytes(&self) -> usize {
        self.down.iter().map(|d| d.bytes()).sum()
    }

    /// Bytes of the `down` scales, which stay resident under a memory budget (the columns come
    /// with the neurons' records).
    pub fn scale_bytes(&self) -> usize {
        self.down.iter().map(|d| d.scales.len() * 2).sum()
    }

    /// Marks the start of a new token (for recall sampling and per-token counters).
    pub fn begin_token(&mut self) {
        self.tokens_seen += 1;
        self.stats.tokens += 1;
    }

    /// `out = FFN(xb)` for one token of layer `li`, computing only active neurons.
    ///
    /// `pre`: gate and up for every neuron, when the caller computed them with the dense kernels
    /// (in memory without the predictor every gate row is read anyway, and one sequential pass is
    /// cheaper than a row at a time). `store`: under a budget, where the neurons' records are.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        pool: &ThreadPool,
        fk: &FloatKernels,
        precision: Precision,
        file: &[u8],
        li: usize,
        l: &LayerWeights,
        xb: &[f32],
        out: &mut [f32],
        mut store: Option<&mut NeuronStore>,
        pre: Option<(&[f32], &[f32])>,
    ) -> Result<()> {
        let n_embd = xb.len();
        let n_ff = l.gate.rows;
        let gk = l.gate.kernels;
        let uk = l.up.kernels;
        let fast = precision == Precision::Fast;
        if fast && pre.is_none() {
            let gvdt = gk.vec_dot_type;
            let n = gvdt.row_bytes(n_embd as u64).expect("block multiple") as usize;
            quant::quantize_activations(gvdt, xb, &mut self.act_gate[..n]);
            let uvdt = uk.vec_dot_type;
            // Gate and up almost always share a format: convert once then.
            if uvdt != gvdt {
                let n = uvdt.row_bytes(n_embd as u64).expect("block multiple") as usize;
                quant::quantize_activations(uvdt, xb, &mut self.act_up[..n]);
            }
        }
        let use_pred = self.config.predictor;
        let rank = self.profile.dims.rank;
        // Under a budget only the records prepared are at hand: recall needs the others' gates.
        let measure_recall =
            use_pred && store.is_none() && self.tokens_seen.is_multiple_of(RECALL_EVERY);
        if let Some(st) = store.as_deref_mut() {
            // The records to read: the predicted ranks (all without the predictor), and ahead of
            // time the next layer's, predicted from this layer's input (the residual stream
            // changes little from one layer to the next).
            let n_layer = self.thresholds.len();
            self.predict_mask(fk, li, xb, false);
            let next = li + 1 < n_layer;
            if next {
                self.predict_mask(fk, li + 1, xb, true);
            }
            let (m, mn) = (&self.pred_mask, &self.next_mask);
            let need = |r: usize| !use_pred || m[r];
            let need_next = |r: usize| !use_pred || mn[r];
            st.prepare(
                li,
                &need,
                next.then_some((li + 1, &need_next as &dyn Fn(usize) -> bool)),
            )?;
        }
        if use_pred {
            // z = A · x, with A's rows as f16 bits.
            let a = &self.profile.pred_a[li * rank * n_embd..(li + 1) * rank * n_embd];
            for (k, zk) in self.z.iter_mut().enumerate() {
                *zk = (fk.dot_f32_f16)(xb, &a[k * n_embd..(k + 1) * n_embd]);
            }
        }
        let th = self.thresholds[li];
        let b = if use_pred {
            &self.profile.pred_b[li * n_ff * rank..(li + 1) * n_ff * rank]
        } else {
            &[][..]
        };
        let z = &self.z;
        let tp = self.pred_thresholds[li];
        let rank_of = &self.rank_of[li * n_ff..(li + 1) * n_ff];
        let dc = &self.down[li];
        if store.is_none() && dc.cols.is_empty() {
            return Err(crate::Error::Invalid(
                "sparse decode of a model opened for a memory budget needs the budget's neuron cache"
                    .into(),
            ));
        }
        let shared = gk.vec_dot_type == uk.vec_dot_type;
        let act_g = &self.act_gate[..];
        let act_u = if shared { act_g } else { &self.act_up[..] };
        let band_masks = &self.band_masks[li * (n_ff / BLOCK) * HEAT_BANDS..];
        let lanes = &self.lanes;
        let slots = &self.slots;
        let store = store.as_deref();
        let failed = std::sync::atomic::AtomicBool::new(false);
        // The first failed read's error (a damaged cluster names its layer and cluster).
        let read_error: std::sync::Mutex<Option<crate::Error>> = std::sync::Mutex::new(None);
        let fail = |e: crate::Error| {
            failed.store(true, Ordering::Relaxed);
            let mut first = read_error.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert(e);
        };
        let (grb, urb) = (l.gate.row_bytes, l.up.row_bytes);
        let gdata = l.gate.rows_data(file, 0, n_ff);
        let udata = l.up.rows_data(file, 0, n_ff);
        let n_chunks = n_ff.div_ceil(CHUNK);
        // One neuron's gate or up row against the input.
        let dot = |w: &[u8], k: &quant::TypeKernels, act: &[u8], row: &mut Vec<f32>| {
            if fast {
                (k.vec_dot)(n_embd, w, act)
            } else {
                (k.dequantize)(w, row);
                (fk.dot_f32)(row, xb)
            }
        };
        // Under a budget, first act(gate) and a of every needed neuron, in rank order: the order
        // the records are stored and read in, so compute follows the reads as they land (and
        // walks the hot region forward). The adds below then go by blocks of the model's order.
        let (mut store_gate_rows, mut store_up_rows) = (0u64, 0u64);
        if let Some(st) = store {
            let order = self.profile.order(li);
            let (sgp, ap) = (
                SendPtr(self.sg_all.as_mut_ptr()),
                SendPtr(self.a_all.as_mut_ptr()),
            );
            let rows = [AtomicU64::new(0), AtomicU64::new(0)];
            pool.for_each_chunk(n_chunks, &|tid, c| {
                // SAFETY: each pool thread uses only its own lane.
                let lane = unsafe { lanes.get(tid) };
                let (r0, r1) = (c * CHUNK, ((c + 1) * CHUNK).min(n_ff));
                let (mut g_rows, mut u_rows) = (0u64, 0u64);
                for (r, &i) in (r0..r1).zip(&order[r0..r1]) {
                    if r + AHEAD < r1 {
                        if let Some(rec) = st.record_if_ready(li, r + AHEAD) {
                            prefetch_t0(&rec[..grb + urb]);
                        }
                    }
                    let (sg, a) = match st.record(li, r) {
                        Ok(Some(rec)) => {
                            let (gw, uw, _) = st.split(rec);
                            g_rows += 1;
                            let sg = silu(dot(gw, gk, act_g, &mut lane.row));
                            if sg.abs() > th.gate || sg.is_nan() {
                                u_rows += 1;
                                (sg, sg * dot(uw, uk, act_u, &mut lane.row))
                            } else {
                                (sg, 0.0)
                            }
                        }
                        // Not needed (the predictor left it out): never active.
                        Ok(None) => (0.0, 0.0),
                        Err(e) => {
                            fail(e);
                            (0.0, 0.0)
                        }
                    };
                    // SAFETY: `order` is a permutation (checked against the bundle's), so each
                    // neuron is written by one rank, of one chunk; nothing reads them until the
                    // pool returns.
                    let i = i as usize;
                    unsafe {
                        *sgp.get().add(i) = sg;
                        *ap.get().add(i) = a;
                    }
                }
                rows[0].fetch_add(g_rows, Ordering::Relaxed);
                rows[1].fetch_add(u_rows, Ordering::Relaxed);
            });
            store_gate_rows = rows[0].load(Ordering::Relaxed);
            store_up_rows = rows[1].load(Ordering::Relaxed);
        }
        let (sg_all, a_all) = (&self.sg_all[..], &self.a_all[..]);
        // act(gate) and a known for every neuron before the adds: in memory without the
        // predictor, and under a budget.
        let known = pre.is_some() || store.is_some();
        // After a failed read the step stops: no adds.
        let n_chunks = if failed.load(Ordering::Relaxed) {
            0
        } else {
            n_chunks
        };
        pool.for_each_chunk(n_chunks, &|tid, c| {
            // SAFETY: each pool thread uses only its own lane, and each chunk only its own slot.
            let lane = unsafe { lanes.get(tid) };
            let slot = unsafe { slots.get(c) };
            slot.partial.fill(0.0);
            slot.gate_rows = 0;
            slot.up_rows = 0;
            slot.active = 0;
            slot.blocks = 0;
            slot.missed = 0;
            slot.bands = [0; HEAT_BANDS];
            // A chunk is whole blocks of 32 neurons in the model's order: a block's neurons share
            // their down scales, so its active columns are summed together and scaled once.
            // Blocks go through a two-stage pipeline: while block b's columns are added, block
            // b+1's active neurons have been chosen and the loads of their columns started. At
            // half the neurons active the columns sit at random places, and without loads
            // issued well ahead, scattered 288-byte reads run at half the speed of streaming.
            let c0 = c * CHUNK;
            let end = ((c + 1) * CHUNK).min(n_ff);
            let n_blocks = (end - c0) / BLOCK;
            // In memory without the predictor: act(gate) and a of this chunk, in one
            // vectorizable pass.
            let mut sg_c = [0f32; CHUNK];
            let mut a_c = [0f32; CHUNK];
            if let Some((g, u)) = pre {
                let (g, u) = (&g[c0..end], &u[c0..end]);
                for (((s, a), &g), &u) in sg_c.iter_mut().zip(&mut a_c).zip(g).zip(u) {
                    *s = silu(g);
                    *a = *s * u;
                }
            } else if store.is_some() {
                sg_c[..end - c0].copy_from_slice(&sg_all[c0..end]);
                a_c[..end - c0].copy_from_slice(&a_all[c0..end]);
            }
            let mut coef = [[0f32; BLOCK]; LAG + 1];
            let mut cols: [[&[u8]; BLOCK]; LAG + 1] = [[&[]; BLOCK]; LAG + 1];
            let mut count = [0usize; LAG + 1];
            for step in 0..n_blocks + LAG {
                if step < n_blocks {
                    let b0 = c0 + step * BLOCK;
                    let (coef, cols, n) = (
                        &mut coef[step % (LAG + 1)],
                        &mut cols[step % (LAG + 1)],
                        &mut count[step % (LAG + 1)],
                    );
                    *n = 0;
                    // The block's scales are read by the adds too: 2.3 KB per block for SmolLM2, a
                    // third of what the adds read at 0.5 (prefetching them took the sparse section
                    // from ~0.83 to ~0.72 of dense swiglu+down).
                    prefetch(dc.block_scale_bytes_at(b0 / BLOCK));
                    // The block's active neurons as bits (for the heat strip's band counts),
                    // their columns and coefficients in order.
                    let mut keep = 0u32;
                    if known {
                        // Which neurons pass both thresholds (a NaN passes, as in the per-neuron
                        // path below), then the active ones in order: no branch per neuron.
                        let k0 = b0 - c0;
                        let (sg, av) = (&sg_c[k0..k0 + BLOCK], &a_c[k0..k0 + BLOCK]);
                        for (j, (s, a)) in sg.iter().zip(av).enumerate() {
                            let on = (s.abs() > th.gate || s.is_nan())
                                & (a.abs() > th.act || a.is_nan());
                            keep |= (on as u32) << j;
                        }
                        let mut m = keep;
                        while m != 0 {
                            let j = m.trailing_zeros() as usize;
                            m &= m - 1;
                            let col = match store {
                                // An active neuron's record was read in the first pass.
                                Some(st) => match st.record(li, rank_of[b0 + j] as usize) {
                                    Ok(Some(r)) => st.split(r).2,
                                    Ok(None) => {
                                        failed.store(true, Ordering::Relaxed);
                                        continue;
                                    }
                                    Err(e) => {
                                        fail(e);
                                        continue;
                                    }
                                },
                                None => dc.col(b0 + j),
                            };
                            prefetch(col);
                            cols[*n] = col;
                            coef[*n] = av[j];
                            *n += 1;
                        }
                    } else {
                        // In memory with the predictor: neuron by neuron, the gate row read only
                        // when the predictor selects the neuron.
                        for i in b0..b0 + BLOCK {
                            // Start the loads of a neuron a few ahead: a predicted neuron's rows
                            // follow gaps the CPU's prefetchers do not cross.
                            if i + AHEAD < end {
                                let k = i + AHEAD;
                                prefetch_t0(&gdata[k * grb..(k + 1) * grb]);
                                prefetch_t0(&udata[k * urb..(k + 1) * urb]);
                            }
                            let (gw, uw, dw) = (
                                &gdata[i * grb..(i + 1) * grb],
                                &udata[i * urb..(i + 1) * urb],
                                dc.col(i),
                            );
                            let predicted = !use_pred || {
                                let g_est = (fk.dot_f32_f16)(z, &b[i * rank..(i + 1) * rank]);
                                silu(g_est).abs() > tp
                            };
                            if !predicted && !measure_recall {
                                continue;
                            }
                            let sg = silu(dot(gw, gk, act_g, &mut lane.row));
                            if predicted {
                                slot.gate_rows += 1;
                            }
                            if sg.abs() <= th.gate {
                                continue;
                            }
                            if predicted {
                                slot.up_rows += 1;
                            }
                            let a = sg * dot(uw, uk, act_u, &mut lane.row);
                            if a.abs() <= th.act {
                                continue;
                            }
                            if !predicted {
                                // A recall-sampling token: this neuron fired but the predictor
                                // missed it.
                                slot.missed += 1;
                                continue;
                            }
                            prefetch(dw);
                            cols[*n] = dw;
                            coef[*n] = a;
                            *n += 1;
                            keep |= 1 << (i - b0);
                        }
                    }
                    let bm = &band_masks[(b0 / BLOCK) * HEAT_BANDS..][..HEAT_BANDS];
                    for (band, &bm) in slot.bands.iter_mut().zip(bm) {
                        *band += (keep & bm).count_ones();
                    }
                }
                if step < LAG {
                    continue;
                }
                // The previous block's adds.
                let bi = step - LAG;
                let (coef, cols, n) = (
                    &coef[bi % (LAG + 1)],
                    &cols[bi % (LAG + 1)],
                    count[bi % (LAG + 1)],
                );
                if n == 0 {
                    continue;
                }
                slot.active += n as u32;
                slot.blocks += 1;
                let scales = dc.block_scales(c0 / BLOCK + bi);
                match dc.kind {
                    ColKind::Nib4 => {
                        let s: f32 = coef[..n].iter().sum();
                        (fk.down_nib4)(&mut slot.partial, scales, &cols[..n], &coef[..n], s)
                    }
                    ColKind::I8 => (fk.down_i8)(&mut slot.partial, scales, &cols[..n], &coef[..n]),
                }
            }
        });
        if failed.load(Ordering::Relaxed) {
            if let Some(e) = read_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
                return Err(crate::Error::Invalid(format!(
                    "reading FFN weights from the neuron bundle failed: {e}"
                )));
            }
            // Name the read that failed (the store's I/O engine kept its message).
            let (path, msg) = store
                .map(|s| {
                    let io = s.io();
                    (io.path().display().to_string(), io.first_error())
                })
                .unwrap_or_default();
            return Err(crate::Error::Invalid(format!(
                "reading FFN weights from the neuron bundle {path} failed: {}",
                msg.unwrap_or_else(|| "a read failed".into())
            )));
        }
        // Sum the chunks in order (the caller's thread: the pool is idle now).
        out.fill(0.0);
        let (mut gate_rows, mut up_rows, mut active, mut missed, mut blocks) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        let bands = &mut self.band_counts[li * HEAT_BANDS..(li + 1) * HEAT_BANDS];
        bands.fill(0);
        for c in 0..n_chunks {
            // SAFETY: no pool job runs; this thread is the only user.
            let slot = unsafe { slots.get(c) };
            for (o, p) in out.iter_mut().zip(&slot.partial) {
                *o += p;
            }
            for (b, n) in bands.iter_mut().zip(slot.bands) {
                *b += n;
            }
            gate_rows += slot.gate_rows as u64;
            up_rows += slot.up_rows as u64;
            active += slot.active as u64;
            blocks += slot.blocks as u64;
            missed += slot.missed as u64;
        }
        if pre.is_some() {
            // Gate and up were computed for every neuron.
            (gate_rows, up_rows) = (n_ff as u64, n_ff as u64);
        } else if store.is_some() {
            (gate_rows, up_rows) = (store_gate_rows, store_up_rows);
        }
        self.active_counts[li] = active as u32;
        let st = &mut self.stats;
        st.active += active;
        st.gate_bytes += gate_rows * grb as u64;
        st.up_bytes += up_rows * urb as u64;
        // The active columns, and the scales of the blocks they fell in.
        st.down_bytes += active * dc.col_bytes as u64 + blocks * dc.block_scale_bytes() as u64;
        if use_pred {
            st.predictor_bytes += (rank * (n_embd + n_ff) * 2) as u64;
        }
        if measure_recall {
            st.recall_found += active;
            st.recall_total += active + missed;
        }
        Ok(())
    }

    /// Marks, by rank, the neurons of `layer` the predictor selects for input `x` (into
    /// `next_mask` when `next`, else `pred_mask`).
    fn predict_mask(&mut self, fk: &FloatKernels, layer: usize, x: &[f32], next: bool) {
        if !self.config.predictor {
            return;
        }
        let (n_embd, rank) = (x.len(), self.profile.dims.rank);
        let n_ff = self.profile.dims.n_ff;
        let a = &self.profile.pred_a[layer * rank * n_embd..(layer + 1) * rank * n_embd];
        let z = if next { &mut self.z_next } else { &mut self.z };
        for (k, zk) in z.iter_mut().enumerate() {
            *zk = (fk.dot_f32_f16)(x, &a[k * n_embd..(k + 1) * n_embd]);
        }
        let b = &self.profile.pred_b[layer * n_ff * rank..(layer + 1) * n_ff * rank];
        let tp = self.pred_thresholds[layer];
        let order = self.profile.order(layer);
        let mask = if next {
            &mut self.next_mask
        } else {
            &mut self.pred_mask
        };
        for (m, &i) in mask.iter_mut().zip(order) {
            let i = i as usize;
            *m = silu((fk.dot_f32_f16)(z, &b[i * rank..(i + 1) * rank])).abs() > tp;
        }
    }

    /// Recall of the predictor measured so far (None without samples).
    pub fn recall(&self) -> Option<f32> {
        (self.stats.recall_total > 0)
            .then(|| self.stats.recall_found as f32 / self.stats.recall_total as f32)
    }
}

/// Records or rows ahead of the one being computed whose gate and up rows are prefetched where
/// they sit at random places or after gaps: cold records under a budget (slots anywhere), and
/// rows in memory with the predictor. Measured when budget decode still visited records in the
/// model's order (so every record, hot ones too, was a random 720-byte read): sparse decode at
/// 0.5 with every record in memory ran at 83 tok/s without the hint, the dot products waiting on
/// memory, and at 150-160 with it (8 ahead; 2 and 4 a little slower).
const AHEAD: usize = 8;

/// As [`prefetch`], into every cache level: rows read a few neurons later.
#[inline(always)]
fn prefetch_t0(bytes: &[u8]) {
    prefetch_lines::<true>(bytes)
}

/// Asks the CPU to start loading `bytes` into cache, as a non-temporal hint: the columns are used
/// once per token, so they should not push the activations and partial sums out of L1/L2.
/// Measured on the development machine (Zen 5): without prefetching, the sparse section at 0.5
/// took 1.09x the time of dense swiglu+down, with it 0.83x (T0 and NTA hints within noise of
/// each other). A hint: no effect where unsupported.
#[inline(always)]
fn prefetch(bytes: &[u8]) {
    prefetch_lines::<false>(bytes)
}

/// Prefetches every cache line `bytes` touch, from the line holding the first: kept in every
/// level (`KEEP`) or as non-temporal / streaming.
#[inline(always)]
fn prefetch_lines<const KEEP: bool>(bytes: &[u8]) {
    let start = bytes.as_ptr() as usize;
    let end = start + bytes.len();
    let mut line = start & !63;
    while line < end {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch never faults, whatever the address.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_NTA, _MM_HINT_T0};
            if KEEP {
                _mm_prefetch::<_MM_HINT_T0>(line as *const i8);
            } else {
                _mm_prefetch::<_MM_HINT_NTA>(line as *const i8);
            }
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above; `prfm` only hints the memory system.
        unsafe {
            if KEEP {
                std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) line, options(nostack, readonly, preserves_flags));
            } else {
                std::arch::asm!("prfm pldl1strm, [{0}]", in(reg) line, options(nostack, readonly, preserves_flags));
            }
        }
        line += 64;
    }
}
