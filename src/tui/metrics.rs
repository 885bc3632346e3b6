//! What the panels show, folded from the engine's telemetry events and the host samples (per-core
//! CPU, process memory). Kept apart from drawing so tests can feed synthetic events and the
//! pause key can freeze a copy.

use super::series::Series;
use serde::{Deserialize, Serialize};
use sparsetop_engine::telemetry::{
    CacheSample, Event, MemorySample, Phase, SessionInfo, SparsitySample, TokenSample,
};

/// How many points each history keeps (more than the widest chart shows).
const HISTORY: usize = 240;

/// A sample of the machine the app runs on, taken by the UI at its tick rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    /// Utilisation of each core, percent.
    pub cpu: Vec<f32>,
    /// Resident set size of this process, bytes.
    pub rss: u64,
    /// Seconds since the previous sample (the interval I/O throughput is averaged over).
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
    /// MB/s read from flash, one point per tick.
    pub io_mbs: Series,
    io_bytes_since_tick: u64,
    io_seen: bool,
    pub memory: Option<MemorySample>,
    pub sparsity: Option<SparsitySample>,
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
            io_bytes_since_tick: 0,
            io_seen: false,
            memory: None,
            sparsity: None,
            host: None,
            dropped: 0,
        }
    }
}

impl Metrics {
    /// Folds one telemetry event into the series.
    pub fn apply(&mut self, ev: &Event) {
        match ev {
            Event::Session(info) => self.session = Some(info.clone()),
            Event::Token(s) => {
                self.ctx_pos = Some(s.pos);
                match s.phase {
                    Phase::Decode => {
                        self.decode.push(s.tok_s());
                        self.decode_total.add(s);
                    }
                    Phase::Prefill => {
                        self.prefill.push(s.tok_s());
                        self.prefill_total.add(s);
                    }
                }
            }
            Event::Sparsity(s) => self.sparsity = Some(s.clone()),
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
                self.io_bytes_since_tick += io.bytes_read;
            }
            Event::Memory(m) => self.memory = Some(*m),
        }
    }

    /// Records a host sample and closes the I/O throughput interval it ends.
    pub fn apply_host(&mut self, h: HostSample) {
        let dt_s = h.interval_s;
        self.host = Some(h);
        if self.io_seen && dt_s > 0.0 {
            self.io_mbs
                .push(self.io_bytes_since_tick as f64 / dt_s / 1e6);
            self.io_bytes_since_tick = 0;
        }
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
        m.apply_host(HostSample {
            cpu: vec![10.0],
            rss: 1,
            interval_s: 0.5,
        });
        assert_eq!(m.io_mbs.last(), Some(4.0));
        assert_eq!(m.io_depth.last(), Some(4.0));
    }
}
