//! A session: one conversation's KV cache and the buffers of the forward pass.
//!
//! All buffers are sized when the session is created for the largest batch, so evaluating a token
//! allocates nothing. Prompts are evaluated in batches of up to `n_batch` tokens (one weight pass
//! per batch); decode evaluates one token at a time.

use super::kv_cache::KvCache;
use super::Model;
use crate::error::{Error, Result};
use crate::offload::budget::FixedRegion;
use crate::offload::bundle::BundleInfo;
use crate::offload::io::IoConfig;
use crate::offload::neurons::NeuronStore;
use crate::offload::stream::{LayerMats, LayerStream};
use crate::ops::attention::{attention, AttnScratch, AttnShape};
use crate::ops::matmul::{matmul, matmul_group, MatmulCtx, MatmulScratch};
use crate::ops::norm::{rms_norm_rows, swiglu};
use crate::ops::Precision;
use crate::quant;
use crate::sparse::{ProfileData, SparseFfn, SparsityConfig};
use crate::telemetry::{
    CacheSample, Event, IoSample, MemorySample, Phase, SessionInfo, SparsitySample,
    TelemetrySender, TokenSample,
};
use crate::threadpool::ThreadPool;
use std::sync::Arc;

/// How a session is set up.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Context length in tokens (0 = default 4096), capped at the model's trained length.
    pub n_ctx: usize,
    /// Most tokens evaluated in one batch.
    pub n_batch: usize,
    /// Worker threads (0 = one per core).
    pub n_threads: usize,
    pub precision: Precision,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            n_ctx: 0,
            n_batch: 256,
            n_threads: 0,
            precision: Precision::Fast,
        }
    }
}

/// Activation buffers, each `n_batch` rows.
struct Buffers {
    x: Vec<f32>,
    xb: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// (cos, sin) per rotated pair, per batch row.
    rope: Vec<f32>,
    /// Output of the sparse FFN for one token.
    ffn_out: Vec<f32>,
}

/// What a dense FFN computed for a batch, shown to an observer (calibration) before the
/// activation is applied.
pub struct FfnObservation<'a> {
    pub layer: usize,
    pub batch: usize,
    /// FFN inputs after normalisation, `batch × n_embd`.
    pub xb: &'a [f32],
    /// Gate pre-activations, `batch × n_ff`.
    pub gate: &'a [f32],
    /// Up projections, `batch × n_ff`.
    pub up: &'a [f32],
}

/// A callback receiving every dense FFN's values.
pub type FfnObserver = Box<dyn FnMut(&FfnObservation<'_>) + Send>;

/// A model plus the mutable state of one sequence.
pub struct Session {
    model: Arc<Model>,
    pub precision: Precision,
    n_ctx: usize,
    n_batch: usize,
    n_threads: usize,
    /// Tokens currently in the KV cache.
    tokens: Vec<u32>,
    kv: KvCache,
    buf: Buffers,
    logits: Vec<f32>,
    mm: MatmulScratch,
    attn: AttnScratch,
    pool: ThreadPool,
    telemetry: Option<TelemetrySender>,
    ffn_observer: Option<FfnObserver>,
    sparse: Option<SparseFfn>,
    /// Apply the sparse FFN to prompt batches too (perplexity under sparsity), not only decode.
    sparse_prefill: bool,
    /// Under a memory budget: where FFN weights come from.
    offload: Option<Offload>,
    /// The neuron bundle sparse decode reads under a budget.
    bundle: Option<BundleInfo>,
}

/// The I/O settings of offload: the I/O engine's defaults (4 readers, 256 KiB reads), which
/// `SPARSETOP_IO_READERS` and `SPARSETOP_IO_MAX_READ` (bytes) override for experiments. Measured
/// at an 85 MiB limit on this machine's virtio disk, 8 readers × 128 KiB or 16 × 64 KiB (the same
/// bounce-buffer memory) decoded no faster (14.8 tok/s against 15.4–19.5 for the default, runs
/// swinging ±20%).
fn offload_io() -> IoConfig {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let d = IoConfig::default();
    IoConfig {
        readers: env("SPARSETOP_IO_READERS")
            .unwrap_or(d.readers)
            .clamp(1, 64),
        max_read: env("SPARSETOP_IO_MAX_READ").unwrap_or(d.max_read),
        ..d
    }
}

/// The layer stream's staging buffers and I/O settings. Dense decode streams every token through
/// it: two buffers, so the next layer loads while one computes, and the readers of
/// [`offload_io`]. With sparse decode (`sparse`) it serves prefill alone, which reads each layer
/// once per batch: one buffer and one reader, whose memory goes to the neuron cache instead
/// (2.3 MiB for SmolLM2-135M, 5% of its FFN).
fn stream_setup(sparse: bool) -> (usize, IoConfig) {
    let io = offload_io();
    if sparse {
        (1, IoConfig { readers: 1, ..io })
    } else {
        (2, io)
    }
}

/// Counters at the last telemetry sample, to report per-token deltas.
#[derive(Default)]
struct Seen {
    hits: u64,
    misses: u64,
    bytes: u64,
    used: u64,
    wasted: u64,
    io_latency_us: u64,
    io_requests: u64,
}

impl Offload {
    /// Sends one token's cache, I/O and memory samples (deltas since the last call).
    fn send_telemetry(&mut self, t: &TelemetrySender, kv_bytes: u64) {
        let st = self.stream.stats;
        let (mut hits, mut misses, mut bytes, mut used, mut wasted) = (
            st.resident_uses,
            st.streamed_uses,
            st.bytes_read,
            st.prefetched,
            0,
        );
        let (mut hot, mut cold) = (
            (self.stream.bytes() - self.stream.staging_bytes()) as u64,
            self.stream.staging_bytes() as u64,
        );
        let mut io = self.stream.io().stats();
        if let Some(n) = &self.neurons {
            let s = n.stats;
            hits += s.cache_hits();
            misses += s.misses + s.prefetch_used.min(s.cold_hits);
            bytes += s.bytes_read;
            used += s.prefetch_used;
            wasted += s.prefetch_wasted;
            hot += n.hot_bytes() as u64;
            cold += n.cold_bytes() as u64;
            let ni = n.io().stats();
            io.queue_depth += ni.queue_depth;
            io.in_flight += ni.in_flight;
            io.latency_us_sum += ni.latency_us_sum;
            io.requests += ni.requests;
        }
        let seen = &mut self.seen;
        t.send(Event::Cache(CacheSample {
            hits: hits - seen.hits,
            misses: misses - seen.misses,
            bytes_read: bytes - seen.bytes,
            prefetch_used: used - seen.used,
            prefetch_wasted: wasted - seen.wasted,
            hot_bytes: hot,
            cold_bytes: cold,
        }));
        let reqs = io.requests - seen.io_requests;
        t.send(Event::Io(IoSample {
            queue_depth: io.queue_depth,
            in_flight: io.in_flight,
            read_latency_us: if reqs > 0 {
                (io.latency_us_sum - seen.io_latency_us) as f32 / reqs as f32
            } else {
                0.0
            },
            bytes_read: bytes - seen.bytes,
        }));
        t.send(Event::Memory(MemorySample {
            // The fixed region (staging and cold slots included) and the hot region.
            resident: self.fixed.total() - self.fixed.kv + kv_bytes + hot,
            budget: Some(self.budget),
        }));
        *seen = Seen {
            hits,
            misses,
            bytes,
            used,
            wasted,
            io_latency_us: io.latency_us_sum,
            io_requests: io.requests,
        };
    }
}

/// A session's memory budget and the FFN streaming that keeps it.
pub struct Offload {
    pub budget: u64,
    pub fixed: FixedRegion,
    /// Dense FFN layers (prefill, and decode at sparsity 0).
    pub stream: LayerStream,
    /// Sparse decode's neurons, when sparsity is on.
    pub neurons: Option<NeuronStore>,
    seen: Seen,
}

/// Number of cores, for the default thread count.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Session {
    pub fn new(model: Arc<Model>, opts: &SessionOptions) -> Result<Self> {
        let cfg = &model.config;
        let n_ctx = model.context_len(opts.n_ctx);
        let n_batch = opts.n_batch.clamp(1, n_ctx);
        let n_threads = if opts.n_threads == 0 {
            default_threads()
        } else {
            opts.n_threads
        };
        let pool = ThreadPool::new(n_threads)
            .map_err(|e| Error::Invalid(format!("cannot start {n_threads} worker threads: {e}")))?;
        let kv = KvCache::new(
            cfg.n_layer,
            n_ctx,
            cfg.k_dim(),
            cfg.v_dim(),
            opts.precision == Precision::Fast,
        );
        let att_dim = cfg.n_head * cfg.head_dim_v;
        let max_cols = cfg.n_embd.max(cfg.n_ff).max(att_dim);
        let buf = Buffers {
            x: vec![0.0; n_batch * cfg.n_embd],
            xb: vec![0.0; n_batch * cfg.n_embd],
            q: vec![0.0; n_batch * cfg.q_dim()],
            k: vec![0.0; n_batch * cfg.k_dim()],
            v: vec![0.0; n_batch * cfg.v_dim()],
            att: vec![0.0; n_batch * att_dim],
            gate: vec![0.0; n_batch * cfg.n_ff],
            up: vec![0.0; n_batch * cfg.n_ff],
            rope: vec![0.0; n_batch * cfg.rope.n_rot],
            ffn_out: vec![0.0; cfg.n_embd],
        };
        Ok(Session {
            precision: opts.precision,
            n_ctx,
            n_batch,
            n_threads,
            tokens: Vec::with_capacity(n_ctx),
            kv,
            buf,
            logits: Vec::with_capacity(cfg.n_vocab),
            mm: MatmulScratch::new(n_threads, max_cols, n_batch),
            attn: AttnScratch::new(n_threads, n_ctx, cfg.head_dim_k),
            pool,
            telemetry: None,
            ffn_observer: None,
            sparse: None,
            sparse_prefill: false,
            offload: None,
            bundle: None,
            model,
        })
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Context length in tokens.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Tokens in the cache so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Bytes held by the KV cache.
    pub fn kv_bytes(&self) -> usize {
        self.kv.bytes()
    }

    /// Sends a [`SessionInfo`] now and a [`TokenSample`] for every evaluation from now on.
    pub fn set_telemetry(&mut self, tx: Option<TelemetrySender>) {
        self.telemetry = tx;
        if let Some(t) = &self.telemetry {
            t.send(Event::Session(self.info()));
        }
    }

    /// Turns sparse decode on with a calibration profile (checked against this model), changes its
    /// settings, or (with `None`) turns it off. A level of 0 runs the dense path.
    pub fn set_sparsity(
        &mut self,
        profile: Option<Arc<ProfileData>>,
        config: SparsityConfig,
    ) -> Result<()> {
        let Some(profile) = profile else {
            self.sparse = None;
            return Ok(());
        };
        if let Some(s) = self.sparse.as_mut() {
            if Arc::ptr_eq(&s.profile, &profile) {
                return s.set_config(config);
            }
        }
        let m = &*self.model;
        let d = profile.dims;
        if d.n_layer != m.config.n_layer || d.n_ff != m.config.n_ff || d.n_embd != m.config.n_embd {
            return Err(Error::Invalid(format!(
                "the sparsity profile is for a model with {} layers × {} neurons (width {}), this one has {} × {} (width {})",
                d.n_layer, d.n_ff, d.n_embd, m.config.n_layer, m.config.n_ff, m.config.n_embd
            )));
        }
        if m.ffn_hash() != profile.model_hash {
            return Err(Error::Invalid(
                "the sparsity profile was made for a different model (its FFN weights differ): run `sparsetop calibrate` for this model".into(),
            ));
        }
        self.sparse = Some(SparseFfn::new(profile, config, m, self.n_threads)?);
        Ok(())
    }

    /// What must stay resident for this session under a budget (see [`FixedRegion`]).
    pub fn fixed_region(&self) -> FixedRegion {
        let m = &*self.model;
        let ffn: usize = m.weights.ffn_bytes();
        let sparse = self.sparse.as_ref();
        let predictor = sparse
            .filter(|s| s.config.predictor)
            .map(|s| (s.profile.pred_a.len() + s.profile.pred_b.len()) * 2)
            .unwrap_or(0);
        let f32s = |v: &Vec<f32>| v.capacity() * 4;
        let neuron_cache = self.neuron_bundle().map(|b| &b.layout);
        let (stream_buffers, stream_io) = stream_setup(neuron_cache.is_some());
        let io = offload_io();
        let b = &self.buf;
        let buffers = [
            &b.x, &b.xb, &b.q, &b.k, &b.v, &b.att, &b.gate, &b.up, &b.rope, &b.ffn_out,
        ]
        .into_iter()
        .map(f32s)
        .sum::<usize>()
            + self.logits.capacity().max(m.config.n_vocab) * 4
            + self.mm.bytes()
            + self.attn.bytes()
            + sparse.map(|s| s.scratch_bytes()).unwrap_or(0);
        FixedRegion {
            // The FFN's `down` scales stay resident with sparse decode (its columns come with the
            // neurons' records).
            weights: (m.file.tensors.iter().map(|t| t.size).sum::<usize>() - ffn
                + sparse.map(|s| s.scale_bytes()).unwrap_or(0)) as u64,
            kv: self.kv.bytes() as u64,
            predictor: predictor as u64,
            buffers: buffers as u64,
            // The layer stream's buffers and its I/O readers' aligned buffers; with sparse
            // decode also the neuron cache's least cold region, working memory every token needs
            // like the staging buffers, and its readers' buffers.
            staging: (stream_buffers
                * m.weights
                    .layers
                    .iter()
                    .map(crate::offload::stream::layer_bytes)
                    .max()
                    .unwrap_or(0)
                + stream_io.readers * stream_io.max_read
                + neuron_cache
                    .map(|l| {
                        // The readers' copy of the cluster CRC table they check reads against.
                        let crcs = l.n_layer * l.clusters_per_layer * 4;
                        NeuronStore::min_cold_slots(l) * l.record_bytes
                            + io.readers * io.max_read
                            + crcs
                    })
                    .unwrap_or(0)) as u64,
        }
    }

    /// Whether decode runs sparse: a sparse FFN is set up at a level above 0 (at 0 it is the
    /// dense path, and a budget streams layers rather than neurons).
    pub fn sparse_decode_on(&self) -> bool {
        self.sparse.as_ref().is_some_and(|s| s.config.level > 0.0)
    }

    /// The neuron bundle a budget reads through the neuron cache: the one set, while sparse
    /// decode is on.
    fn neuron_bundle(&self) -> Option<&BundleInfo> {
        self.bundle.as_ref().filter(|_| self.sparse_decode_on())
    }

    /// Sets (or with `None` lifts) a memory budget: FFN weights beyond what it holds are read
    /// from the model file as needed. Fails, with the minimum stated, when the budget does not
    /// hold the fixed region.
    pub fn set_mem_budget(&mut self, budget: Option<u64>) -> Result<()> {
        let Some(budget) = budget else {
            if !self.model.ffn_in_memory() {
                return Err(Error::Invalid(
                    "this model was opened for a memory budget (its FFN weights are not in memory): keep a budget".into(),
                ));
            }
            self.offload = None;
            return Ok(());
        };
        let fixed = self.fixed_region();
        let bundle = self.neuron_bundle().cloned();
        if self.sparse_decode_on() && bundle.is_none() {
            return Err(Error::Invalid(
                "sparse decode under a memory budget reads the neuron bundle: make it with `sparsetop convert`".into(),
            ));
        }
        let io = offload_io();
        let (buffers, stream_io) = stream_setup(bundle.is_some());
        let left = fixed.left_for_ffn(budget)?;
        let path = self.model.file.path().ok_or_else(|| {
            Error::Invalid("a memory budget needs a model read from a file".into())
        })?;
        // Free the old memory before the new is filled.
        self.offload = None;
        let (stream, neurons) = match &bundle {
            None => (
                LayerStream::new(path, &self.model.weights.layers, left, buffers, stream_io)?,
                None,
            ),
            Some(b) => (
                LayerStream::new(path, &self.model.weights.layers, 0, buffers, stream_io)?,
                Some(NeuronStore::new(b, left, io)?),
            ),
        };
        self.offload = Some(Offload {
            budget,
            fixed,
            stream,
            neurons,
            seen: Seen::default(),
        });
        Ok(())
    }

    /// The neuron bundle sparse decode reads under a memory budget (checked against this model
    /// and the sparsity profile in use). Takes effect at the next [`Session::set_mem_budget`].
    pub fn set_neuron_bundle(&mut self, bundle: Option<BundleInfo>) -> Result<()> {
        if let (Some(b), Some(sp)) = (&bundle, &self.sparse) {
            crate::offload::bundle::check_matches(b, &self.model.ffn_hash(), &sp.profile)?;
        }
        self.bundle = bundle;
        Ok(())
    }

    /// The memory budget in force and how it is used.
    pub fn offload(&self) -> Option<&Offload> {
        self.offload.as_ref()
    }

    /// The sparse FFN's state, when sparse decode is on.
    pub fn sparse(&self) -> Option<&SparseFfn> {
        self.sparse.as_ref()
    }

    /// Zeroes the sparse FFN's cumulative counters (to measure one stretch of decoding).
    pub fn reset_sparse_stats(&mut self) {
        if let Some(s) = self.sparse.as_mut() {
            s.stats = Default::default();
        }
    }

    /// Applies sparsity to prompt batches as well (for measuring its effect on perplexity).
    pub fn set_sparse_prefill(&mut self, on: bool) {
        self.sparse_prefill = on;
    }

    /// Installs (or removes) a callback that sees every dense FFN's inputs, gate and up values.
    pub fn set_ffn_observer(&mut self, f: Option<FfnObserver>) {
        self.ffn_observer = f;
    }

    /// What this session runs, for telemetry and status lines.
    pub fn info(&self) -> SessionInfo {
        let m = &*self.model;
        SessionInfo {
            model: if m.config.name.is_empty() {
                m.file
                    .path()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                m.config.name.clone()
            },
            arch: m.config.arch.name().to_string(),
            n_layer: m.config.n_layer as u32,
            n_ff: m.config.n_ff as u32,
            n_ctx: self.n_ctx as u32,
            n_threads: self.n_threads as u32,
            precision: match self.precision {
                Precision::Exact => "exact",
                Precision::Fast => "fast",
            }
            .to_string(),
            simd: quant::active_tier().name().to_string(),
            weight_bytes: m.weights.matrix_bytes() as u64,
            kv_bytes: self.kv.bytes() as u64,
        }
    }

    /// Forgets everything: the next evaluation starts at position 0.
    pub fn clear(&mut self) {
        self.tokens.clear();
    }

    /// Keeps only the first `n` cached tokens (a shared prefix with the next prompt).
    pub fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
    }

    /// Evaluates `tokens` after those already cached and returns the logits of the tokens from
    /// index `logits_from` on (rows of `n_vocab`). Fails, changing nothing, if they do not fit.
    pub fn eval(&mut self, tokens: &[u32], logits_from: usize) -> Result<&[f32]> {
        let cfg = &self.model.config;
        let n_vocab = cfg.n_vocab;
        if self.tokens.len() + tokens.len() > self.n_ctx {
            return Err(Error::Context(format!(
                "{} tokens do not fit: {} already in a context of {} (use -c to enlarge it, up to the model's {})",
                tokens.len(),
                self.tokens.len(),
                self.n_ctx,
                cfg.n_ctx_train
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::Invalid(format!(
                "token id {bad} is outside the vocabulary ({n_vocab})"
            )));
        }
        let t0 = std::time::Instant::now();
        let n_out = tokens.len().saturating_sub(logits_from);
        self.logits.clear();
        self.logits.resize(n_out * n_vocab, 0.0);
        let mut done = 0;
        let n0 = self.tokens.len();
        while done < tokens.len() {
            let b = (tokens.len() - done).min(self.n_batch);
            let chunk = &tokens[done..done + b];
            // Rows of this chunk whose logits are wanted.
            let first_out = logits_from.saturating_sub(done).min(b);
            let out_row0 = (done + first_out).saturating_sub(logits_from);
            let result = self
                .forward_batch(chunk, first_out, out_row0, Checks::Final)
                .and_then(|finite| match finite {
                    true => Ok(()),
                    // Something turned non-finite: the batch again, checked after every
                    // stage, to name where (the first pass only looked at its end, so a token
                    // costs one check of its last hidden state and logits, not one per layer).
                    false => self
                        .forward_batch(chunk, first_out, out_row0, Checks::EveryStage)
                        .and_then(|_| Err(non_finite("the output layer", n0 + done))),
                });
            if let Err(e) = result {
                // Nothing of this call stays: the cache holds what it held before.
                self.tokens.truncate(n0);
                return Err(e);
            }
            self.tokens.extend_from_slice(chunk);
            done += b;
        }
        if let (Some(t), Some(sp)) = (&self.telemetry, &self.sparse) {
            if tokens.len() == 1 && sp.config.level > 0.0 {
                t.send(Event::Sparsity(SparsitySample {
                    active: sp.active_counts.clone(),
                    n_ff: self.model.config.n_ff as u32,
                    recall: sp.recall(),
                    bands: sp.band_counts.clone(),
                    level: sp.config.level,
                    predictor: sp.config.predictor,
                }));
            }
        }
        if let (Some(t), Some(o)) = (&self.telemetry, self.offload.as_mut()) {
            if tokens.len() == 1 {
                o.send_telemetry(t, self.kv.bytes() as u64);
            }
        }
        if let Some(t) = &self.telemetry {
            t.send(Event::Token(TokenSample {
                phase: if tokens.len() > 1 {
                    Phase::Prefill
                } else {
                    Phase::Decode
                },
                tokens: tokens.len() as u32,
                micros: t0.elapsed().as_micros() as u64,
                pos: self.tokens.len() as u32,
            }));
        }
        Ok(&self.logits)
    }

    /// One batch through every layer; logits for rows `first_out..` land at logits row `out_row0`.
    /// Returns whether the batch's last hidden states and its logits are all finite; with
    /// [`Checks::EveryStage`], fails at the first stage whose output is not.
    fn forward_batch(
        &mut self,
        tokens: &[u32],
        first_out: usize,
        out_row0: usize,
        checks: Checks,
    ) -> Result<bool> {
        let every = checks == Checks::EveryStage;
        if self.offload.is_none() && !self.model.ffn_in_memory() {
            return Err(Error::Invalid(
                "this model was opened for a memory budget: set one with --mem-budget".into(),
            ));
        }
        let model = &*self.model;
        let cfg = &model.config;
        let w = &model.weights;
        let file = model.file.bytes();
        let bsz = tokens.len();
        let pos0 = self.tokens.len();
        let e = cfg.n_embd;
        let p = self.precision;
        let buf = &mut self.buf;
        let pool = &self.pool;
        let mut mm = MatmulCtx {
            pool: &self.pool,
            file,
            precision: p,
            float: quant::float_kernels(),
            scratch: &mut self.mm,
        };

        // Embedding lookup.
        let emb = &w.token_embd;
        for (b, &t) in tokens.iter().enumerate() {
            let row = emb.rows_data(file, t as usize, t as usize + 1);
            (emb.kernels.dequantize)(row, &mut buf.x[b * e..(b + 1) * e]);
        }
        if every {
            check_rows(&buf.x[..bsz * e], e, pos0, "the token embedding")?;
        }
        let n_rot = cfg.rope.n_rot;
        for b in 0..bsz {
            model
                .rope
                .cos_sin(pos0 + b, &mut buf.rope[b * n_rot..(b + 1) * n_rot]);
        }

        let (qd, kd, vd, ff) = (cfg.q_dim(), cfg.k_dim(), cfg.v_dim(), cfg.n_ff);
        let ad = cfg.n_head * cfg.head_dim_v;
        for (li, l) in w.layers.iter().enumerate() {
            rms_norm_rows(
                &buf.x[..bsz * e],
                &l.attn_norm,
                cfg.rms_eps,
                &mut buf.xb[..bsz * e],
            );
            let xb = &buf.xb[..bsz * e];
            matmul_group(
                &mut mm,
                xb,
                bsz,
                &mut [
                    (&l.wq, &mut buf.q[..bsz * qd]),
                    (&l.wk, &mut buf.k[..bsz * kd]),
                    (&l.wv, &mut buf.v[..bsz * vd]),
                ],
            );
            for (bias, out, d) in [
                (&l.bq, &mut buf.q, qd),
                (&l.bk, &mut buf.k, kd),
                (&l.bv, &mut buf.v, vd),
            ] {
                if let Some(bias) = bias {
                    for row in out[..bsz * d].chunks_exact_mut(d) {
                        for (o, &bb) in row.iter_mut().zip(bias.iter()) {
                            *o += bb;
                        }
                    }
                }
            }
            for b in 0..bsz {
                let cs = &buf.rope[b * n_rot..(b + 1) * n_rot];
                model
                    .rope
                    .apply(&mut buf.q[b * qd..(b + 1) * qd], cfg.head_dim_k, cs);
                model
                    .rope
                    .apply(&mut buf.k[b * kd..(b + 1) * kd], cfg.head_dim_k, cs);
                self.kv.k[li].write((pos0 + b) * kd, &buf.k[b * kd..(b + 1) * kd]);
                self.kv.v[li].write((pos0 + b) * vd, &buf.v[b * vd..(b + 1) * vd]);
            }
            let shape = AttnShape {
                n_head: cfg.n_head,
                n_head_kv: cfg.n_head_kv,
                head_dim_k: cfg.head_dim_k,
                head_dim_v: cfg.head_dim_v,
                pos0,
                batch: bsz,
            };
            attention(
                pool,
                mm.float,
                shape,
                &buf.q[..bsz * qd],
                &self.kv.k[li],
                &self.kv.v[li],
                &mut buf.att[..bsz * ad],
                &self.attn,
            );
            matmul(
                &mut mm,
                &l.wo,
                &buf.att[..bsz * ad],
                bsz,
                &mut buf.xb[..bsz * e],
            );
            for (x, d) in buf.x[..bsz * e].iter_mut().zip(&buf.xb[..bsz * e]) {
                *x += d;
            }
            if every {
                check_rows(
                    &buf.x[..bsz * e],
                    e,
                    pos0,
                    &format!("layer {li} (attention)"),
                )?;
            }

            rms_norm_rows(
                &buf.x[..bsz * e],
                &l.ffn_norm,
                cfg.rms_eps,
                &mut buf.xb[..bsz * e],
            );
            let sparse_on = self
                .sparse
                .as_ref()
                .is_some_and(|s| s.config.level > 0.0 && (bsz == 1 || self.sparse_prefill));
            if sparse_on && self.offload.as_ref().is_some_and(|o| o.neurons.is_none()) {
                return Err(Error::Invalid(
                    "sparsity changed under a memory budget: set the budget again to rebuild the neuron cache".into(),
                ));
            }
            if sparse_on {
                let sp = self.sparse.as_mut().expect("checked above");
                for b in 0..bsz {
                    if li == 0 {
                        sp.begin_token();
                    }
                    let r = b * e..(b + 1) * e;
                    // In memory without the predictor every gate row is read anyway: take gate
                    // and up as the dense path does (one sequential pass over the rows), and let
                    // the sparse FFN choose neurons and add their `down` columns.
                    let pre = if self.offload.is_none() && !sp.config.predictor {
                        matmul_group(
                            &mut mm,
                            &buf.xb[r.clone()],
                            1,
                            &mut [(&l.gate, &mut buf.gate[..ff]), (&l.up, &mut buf.up[..ff])],
                        );
                        Some((&buf.gate[..ff], &buf.up[..ff]))
                    } else {
                        None
                    };
                    sp.forward(
                        pool,
                        mm.float,
                        p,
                        file,
                        li,
                        l,
                        &buf.xb[r.clone()],
                        &mut buf.ffn_out,
                        self.offload.as_mut().and_then(|o| o.neurons.as_mut()),
                        pre,
                    )?;
                    buf.xb[r].copy_from_slice(&buf.ffn_out);
                }
            } else {
                let xb = &buf.xb[..bsz * e];
                // Under a budget the layer's matrices come from the stream, rebased into its buffer.
                let (ffn_file, lm) = match self.offload.as_mut() {
                    Some(o) => o.stream.layer(li)?,
                    None => (
                        file,
                        LayerMats {
                            gate: l.gate,
                            up: l.up,
                            down: l.down,
                        },
                    ),
                };
                let mut mm = MatmulCtx {
                    pool,
                    file: ffn_file,
                    precision: p,
                    float: mm.float,
                    scratch: &mut *mm.scratch,
                };
                matmul_group(
                    &mut mm,
                    xb,
                    bsz,
                    &mut [
                        (&lm.gate, &mut buf.gate[..bsz * ff]),
                        (&lm.up, &mut buf.up[..bsz * ff]),
                    ],
                );
                if let Some(obs) = self.ffn_observer.as_mut() {
                    obs(&FfnObservation {
                        layer: li,
                        batch: bsz,
                        xb: &buf.xb[..bsz * e],
                        gate: &buf.gate[..bsz * ff],
                        up: &buf.up[..bsz * ff],
                    });
                }
                swiglu(&mut buf.gate[..bsz * ff], &buf.up[..bsz * ff]);
                matmul(
                    &mut mm,
                    &lm.down,
                    &buf.gate[..bsz * ff],
                    bsz,
                    &mut buf.xb[..bsz * e],
                );
            }
            for (x, d) in buf.x[..bsz * e].iter_mut().zip(&buf.xb[..bsz * e]) {
                *x += d;
            }
            if every {
                check_rows(&buf.x[..bsz * e], e, pos0, &format!("layer {li} (FFN)"))?;
            }
        }
        // A non-finite value anywhere in a layer stays in its row's residual stream (a sum), and
        // reaches other rows only through it: checking the last hidden states covers every layer.
        if !all_finite(&buf.x[..bsz * e]) {
            return Ok(false);
        }

        let n_out = bsz - first_out;
        if n_out == 0 {
            return Ok(true);
        }
        let rows = first_out * e..bsz * e;
        rms_norm_rows(
            &buf.x[rows.clone()],
            &w.output_norm,
            cfg.rms_eps,
            &mut buf.xb[rows],
        );
        let nv = cfg.n_vocab;
        let out = &mut self.logits[out_row0 * nv..(out_row0 + n_out) * nv];
        matmul(
            &mut mm,
            &w.output,
            &buf.xb[first_out * e..bsz * e],
            n_out,
            out,
        );
        Ok(all_finite(out))
    }
}

/// How much of the forward pass is checked for non-finite values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checks {
    /// The last hidden states and the logits: once per batch, cheap.
    Final,
    /// After the embedding and after every layer's attention and FFN (to name where).
    EveryStage,
}

/// Whether every value is finite. Branch-free, so it vectorizes: a token's logits (49152 for
/// SmolLM2) take a few microseconds.
fn all_finite(v: &[f32]) -> bool {
    v.iter().fold(true, |ok, x| ok & x.is_finite())
}

/// Fails naming `stage` when a row of `x` (rows of `width`, the first at position `pos0`) holds
/// a non-finite value.
fn check_rows(x: &[f32], width: usize, pos0: usize, stage: &str) -> Result<()> {
    match x.chunks_exact(width).position(|r| !all_finite(r)) {
        None => Ok(()),
        Some(row) => Err(non_finite(stage, pos0 + row)),
    }
}

/// The error of a forward pass that produced NaN or infinity.
fn non_finite(stage: &str, pos: usize) -> Error {
    Error::Model(format!(
        "the activations turned non-finite (NaN or infinity) first in {stage}, at the token in \
         position {pos}: the model's weights there are damaged or unusable, so no result is given"
    ))
}
