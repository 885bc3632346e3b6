//! What the panels show, folded from the engine's telemetry events and the host samples (per-core
//! CPU, process memory). Kept apart from drawing so tests can feed synthetic events and the
//! pause key can freeze a copy.

use super::series::Series;
use serde::{Deserialize, Serialize};
use sparsetop_engine::sparse::SparsityConfig;
use sparsetop_engine::telemetry::{
    CacheSample, Event, MemorySample, Phase, SessionInfo, SparsitySample, TokenSample, HEAT_BANDS,
};

/// How many points each history keeps (more than the widest chart shows).
const HISTORY: usize = 240;

/// Weight of the newest token in [`Metrics::heat`]: about the last eight tokens count, enough to
/// steady the strip while it still follows a change of topic within a sentence.
pub const HEAT_WEIGHT: f32 = 0.25;

/// A sample of the machine the app runs on, taken by the UI at its tick rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    /// Utilisation of each core, percent.
    pub cpu: Vec<f32>,
    /// Resident set size of this process, bytes.
    pub rss: u64,
    /// Seconds since the previous sample.
    pub interval_s: f64,
}

/// A running total of tokens and time, for averages that weigh every token equally.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    pub tokens: u64,
    pub micros: u64,
}

impl Rate {
    fn add(&mut self, s: &TokenSample) {
        self.tokens += s.tokens as u64;
        self.micros += s.micros;
    }

    /// Tokens per second, if any were counted.
    pub fn tok_s(&self) -> Option<f64> {
        (self.micros > 0).then(|| self.tokens as f64 * 1e6 / self.micros as f64)
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    pub session: Option<SessionInfo>,
    /// Decode tokens/s of each decoded token.
    pub decode: Series,
    /// Prefill tokens/s of each prompt batch.
    pub prefill: Series,
    pub decode_total: Rate,
    pub prefill_total: Rate,
    /// Tokens in the KV cache after the last evaluation.
    pub ctx_pos: Option<u32>,
    /// Neuron-cache hit rate per decoded token, percent.
    pub cache_hit: Series,
    pub last_cache: Option<CacheSample>,
    /// I/O queue depth per sample.
    pub io_depth: Series,
    pub io_in_flight: u32,
    pub io_latency_us: f32,
    /// MB/s read from flash while decoding: each token's reads over its time.
    pub io_mbs: Series,
    /// Bytes the last decoded token read.
    pub io_bytes: u64,
    /// An I/O sample waits for its token's time to become a point of `io_mbs`.
    io_pending: Option<u64>,
    io_seen: bool,
    pub memory: Option<MemorySample>,
    /// The memory budget as the engine worker last told it (`Some(None)`: no budget, the whole
    /// model in memory); `None` when not told (replays of older recordings go by the samples).
    pub budget: Option<Option<u64>>,
    /// The last decoded token's FFN activity, while sparse decode is on.
    pub sparsity: Option<SparsitySample>,
    /// Sparse decode's settings in force, when known: from the startup flags, the engine's answer
    /// to a change, or (in a replay) the samples, which carry them.
    pub sparse_config: Option<SparsityConfig>,
    /// Per layer and band of the hot-first neuron order (`n_layer × HEAT_BANDS`, layer-major), the
    /// share of the band's neurons that were active, as an exponential moving average over
    /// decoded tokens (the newest weighs [`HEAT_WEIGHT`]). One token's bands jump around; the
    /// average shows where activity sits, so the heat strip reads instead of flickering. It
    /// starts over when the settings change, so the strip shows the new level at once.
    pub heat: Vec<f32>,
    pub host: Option<HostSample>,
    /// Telemetry samples the engine dropped because the UI was behind.
    pub dropped: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            session: None,
            decode: Series::new(HISTORY),
            prefill: Series::new(HISTORY),
            decode_total: Rate::default(),
            prefill_total: Rate::default(),
            ctx_pos: None,
            cache_hit: Series::new(HISTORY),
            last_cache: None,
            io_depth: Series::new(HISTORY),
            io_in_flight: 0,
            io_latency_us: 0.0,
            io_mbs: Series::new(HISTORY),
            io_bytes: 0,
            io_pending: None,
            io_seen: false,
            memory: None,
            budget: None,
            sparsity: None,
            sparse_config: None,
            heat: Vec::new(),
            host: None,
            dropped: 0,
        }
    }
}

impl Metrics {
    /// Folds one telemetry event into the series.
    pub fn apply(&mut self, ev: &Event) {
        // Offload samples arriving after the budget was lifted were sent before (they travel on
        // another channel than the worker's answer): they describe an engine that is gone.
        let lifted = self.budget == Some(None);
        match ev {
            Event::Cache(_) | Event::Io(_) | Event::Memory(_) if lifted => {}
            Event::Session(info) => self.session = Some(info.clone()),
            Event::Token(s) => {
                self.ctx_pos = Some(s.pos);
                match s.phase {
                    Phase::Decode => {
                        self.decode.push(s.tok_s());
                        self.decode_total.add(s);
                        // The engine sends a token's I/O sample before its time.
                        if let Some(b) = self.io_pending.take() {
                            self.io_mbs.push(b as f64 / s.micros.max(1) as f64);
                        }
                    }
                    Phase::Prefill => {
                        self.prefill.push(s.tok_s());
                        self.prefill_total.add(s);
                    }
                }
            }
            Event::Sparsity(s) => self.apply_sparsity(s),
            Event::Cache(c) => {
                let total = c.hits + c.misses;
                if total > 0 {
                    self.cache_hit.push(c.hits as f64 * 100.0 / total as f64);
                }
                self.last_cache = Some(*c);
            }
            Event::Io(io) => {
                self.io_seen = true;
                self.io_depth.push(io.queue_depth as f64);
                self.io_in_flight = io.in_flight;
                self.io_latency_us = io.read_latency_us;
                self.io_bytes = io.bytes_read;
                self.io_pending = Some(io.bytes_read);
            }
            Event::Memory(m) => self.memory = Some(*m),
        }
    }

    /// Folds a sparsity sample. A sample taken under other settings than the known ones is one
    /// that was still in the telemetry channel when a change was answered: it is dropped.
    /// (Recordings made before samples carried their settings have level 0: they are shown, and
    /// set nothing.)
    fn apply_sparsity(&mut self, s: &SparsitySample) {
        let from = (s.level > 0.0).then_some(SparsityConfig {
            level: s.level,
            predictor: s.predictor,
        });
        match (self.sparse_config, from) {
            (Some(known), Some(f)) if known != f => return,
            (None, Some(f)) => self.sparse_config = Some(f),
            _ => {}
        }
        let band = s.n_ff as f32 / HEAT_BANDS as f32;
        let shares = s.bands.iter().map(|&n| (n as f32 / band.max(1.0)).min(1.0));
        if self.heat.len() == s.bands.len() {
            for (h, x) in self.heat.iter_mut().zip(shares) {
                *h += HEAT_WEIGHT * (x - *h);
            }
        } else {
            self.heat = shares.collect();
        }
        self.sparsity = Some(s.clone());
    }

    /// New settings in force: the samples and heat of the old ones no longer describe decoding.
    pub fn set_sparse_config(&mut self, c: SparsityConfig) {
        if self.sparse_config != Some(c) {
            self.sparse_config = Some(c);
            self.sparsity = None;
            self.heat.clear();
        }
    }

    /// Records a host sample.
    pub fn apply_host(&mut self, h: HostSample) {
        self.host = Some(h);
    }

    /// The budget the engine now runs with. Lifting it ends the cache, I/O and memory samples:
    /// what the panels held no longer describes the engine, so it goes. A new budget keeps the
    /// cache and I/O histories (their change is the point), but the memory figure against the
    /// old budget goes until the next token's.
    pub fn set_budget(&mut self, b: Option<u64>) {
        if b.is_some() && self.memory.is_some_and(|m| m.budget != b) {
            self.memory = None;
        }
        if b.is_none() && self.budget != Some(None) {
            self.cache_hit = Series::new(HISTORY);
            self.last_cache = None;
            self.io_depth = Series::new(HISTORY);
            self.io_mbs = Series::new(HISTORY);
            self.io_in_flight = 0;
            self.io_latency_us = 0.0;
            self.io_bytes = 0;
            self.io_pending = None;
            self.io_seen = false;
            self.memory = None;
        }
        self.budget = Some(b);
    }

    /// A budget is known to be set, though no token may have been decoded under it yet.
    pub fn budget_set(&self) -> Option<u64> {
        self.budget.flatten()
    }

    /// Whether any I/O sample has arrived.
    pub fn has_io(&self) -> bool {
        self.io_seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparsetop_engine::telemetry::IoSample;

    fn tok(phase: Phase, tokens: u32, micros: u64, pos: u32) -> Event {
        Event::Token(TokenSample {
            phase,
            tokens,
            micros,
            pos,
        })
    }

    #[test]
    fn folds_rates_and_averages() {
        let mut m = Metrics::default();
        m.apply(&tok(Phase::Prefill, 10, 100_000, 10));
        m.apply(&tok(Phase::Decode, 1, 20_000, 11));
        m.apply(&tok(Phase::Decode, 1, 30_000, 12));
        assert_eq!(m.prefill.last(), Some(100.0));
        assert_eq!(m.decode.last().map(|v| v.round()), Some(33.0));
        assert_eq!(m.decode_total.tok_s(), Some(40.0));
        assert_eq!(m.ctx_pos, Some(12));
    }

    #[test]
    fn cache_and_io_series() {
        let mut m = Metrics::default();
        m.apply(&Event::Cache(CacheSample {
            hits: 3,
            misses: 1,
            bytes_read: 0,
            prefetch_used: 0,
            prefetch_wasted: 0,
            hot_bytes: 0,
            cold_bytes: 0,
        }));
        assert_eq!(m.cache_hit.last(), Some(75.0));
        assert!(!m.has_io());
        m.apply(&Event::Io(IoSample {
            queue_depth: 4,
            in_flight: 2,
            read_latency_us: 80.0,
            bytes_read: 2_000_000,
        }));
        // The token's time turns its reads into MB/s.
        assert!(m.io_mbs.is_empty());
        m.apply(&tok(Phase::Decode, 1, 500_000, 5));
        assert_eq!(m.io_mbs.last(), Some(4.0));
        assert_eq!(m.io_bytes, 2_000_000);
        assert_eq!(m.io_depth.last(), Some(4.0));
        // Lifting the budget clears what offload showed, and late samples are dropped.
        m.set_budget(None);
        assert!(!m.has_io() && m.cache_hit.is_empty() && m.memory.is_none());
        m.apply(&Event::Memory(MemorySample {
            resident: 1,
            budget: Some(2),
        }));
        assert!(m.memory.is_none());
        // A new budget drops the memory figure against the old one.
        let mut m = Metrics::default();
        m.set_budget(Some(80));
        m.apply(&Event::Memory(MemorySample {
            resident: 70,
            budget: Some(80),
        }));
        m.set_budget(Some(80));
        assert!(m.memory.is_some());
        m.set_budget(Some(84));
        assert!(m.memory.is_none());
    }

    fn sparse(level: f32, bands: Vec<u32>) -> Event {
        Event::Sparsity(SparsitySample {
            active: vec![bands.iter().sum()],
            n_ff: 80,
            recall: None,
            bands,
            level,
            predictor: false,
        })
    }

    #[test]
    fn heat_is_a_moving_average_that_restarts_with_new_settings() {
        let mut m = Metrics::default();
        let half = SparsityConfig {
            level: 0.5,
            predictor: false,
        };
        m.set_sparse_config(half);
        // Bands of 10 neurons: the first token sets the heat, later ones move it by a quarter.
        m.apply(&sparse(0.5, vec![10, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(m.heat[..2], [1.0, 0.0]);
        m.apply(&sparse(0.5, vec![0, 10, 0, 0, 0, 0, 0, 0]));
        assert_eq!(m.heat[..2], [0.75, 0.25]);
        // A late sample from other settings changes nothing.
        m.apply(&sparse(0.3, vec![10; 8]));
        assert_eq!(m.heat[..2], [0.75, 0.25]);
        // New settings drop the old sample and heat.
        m.set_sparse_config(SparsityConfig {
            level: 0.0,
            predictor: false,
        });
        assert!(m.sparsity.is_none() && m.heat.is_empty());
        // Without known settings (a replay), the samples tell them.
        let mut m = Metrics::default();
        m.apply(&sparse(0.5, vec![5; 8]));
        assert_eq!(m.sparse_config, Some(half));
        assert_eq!(m.heat, vec![0.5; 8]);
    }
}
