//! Telemetry: what the engine reports while it works, for the TUI's panels and for recordings.
//!
//! The engine never waits for its observers. Samples go through a bounded channel with
//! [`TelemetrySender::send`], which drops a sample (and counts the drop) when the channel is full,
//! so a slow or paused UI costs the engine nothing. Events that must not be lost (the chat text)
//! travel elsewhere; these are measurements, and a dropped one only makes a chart coarser.
//!
//! Events are plain data with serde derives so a session can be recorded as JSON lines and replayed.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// Which kind of evaluation a sample measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Prompt tokens evaluated as a batch (dense).
    Prefill,
    /// One generated token.
    Decode,
}

/// A description of the running session, sent when it starts or its settings change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub model: String,
    pub arch: String,
    pub n_layer: u32,
    pub n_ff: u32,
    pub n_ctx: u32,
    pub n_threads: u32,
    /// `exact` or `fast`.
    pub precision: String,
    /// SIMD tier of the kernels (`avx512`, `neon`...).
    pub simd: String,
    /// Bytes of weight matrices (what decode streams per token when dense).
    pub weight_bytes: u64,
    /// Bytes reserved for the KV cache.
    pub kv_bytes: u64,
}

/// One evaluation: a prompt batch or a decoded token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenSample {
    pub phase: Phase,
    /// Tokens evaluated in this step (1 for decode).
    pub tokens: u32,
    /// Wall time of the step in microseconds.
    pub micros: u64,
    /// Context position after the step (tokens in the KV cache).
    pub pos: u32,
}

impl TokenSample {
    /// Tokens per second of this step.
    pub fn tok_s(&self) -> f64 {
        if self.micros == 0 {
            0.0
        } else {
            self.tokens as f64 * 1e6 / self.micros as f64
        }
    }
}

/// FFN activity of one decoded token: active neurons per layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparsitySample {
    /// Active neurons in each layer's FFN, index = layer.
    pub active: Vec<u32>,
    /// Neurons per layer (the FFN width).
    pub n_ff: u32,
    /// Share of truly active neurons the predictor found, when measured for this token.
    pub recall: Option<f32>,
    /// Where in the hot-first order the active neurons were: per layer, [`HEAT_BANDS`] counts of
    /// active neurons, band 0 holding the hottest `n_ff / HEAT_BANDS` ranks (layer-major). Shows
    /// whether activity stays in the hot neurons the calibration predicted (what a cache keeps).
    #[serde(default)]
    pub bands: Vec<u32>,
    /// Target sparsity and predictor use in force.
    #[serde(default)]
    pub level: f32,
    #[serde(default)]
    pub predictor: bool,
}

/// Bands of the hot-first neuron order that [`SparsitySample::bands`] counts activity in.
pub const HEAT_BANDS: usize = 8;

/// Neuron-cache counters for one decoded token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CacheSample {
    pub hits: u64,
    pub misses: u64,
    pub bytes_read: u64,
    pub prefetch_used: u64,
    pub prefetch_wasted: u64,
    /// Bytes held by the hot region (neurons, or whole FFN layers in dense streaming).
    #[serde(default)]
    pub hot_bytes: u64,
    /// Bytes held by the cold region (neuron slots, or the layer staging buffers).
    #[serde(default)]
    pub cold_bytes: u64,
}

/// I/O pipeline state, sampled per decoded token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IoSample {
    /// Requests waiting in the queue.
    pub queue_depth: u32,
    /// Reads issued and not yet complete.
    pub in_flight: u32,
    /// Mean read latency over the sample, microseconds.
    pub read_latency_us: f32,
    /// Bytes read during the sample.
    pub bytes_read: u64,
}

/// Memory held by the engine against its budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Bytes the engine holds resident (weights in RAM, caches, KV, buffers).
    pub resident: u64,
    /// The memory budget, when one is set.
    pub budget: Option<u64>,
}

/// Everything the engine reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Session(SessionInfo),
    Token(TokenSample),
    Sparsity(SparsitySample),
    Cache(CacheSample),
    Io(IoSample),
    Memory(MemorySample),
}

/// The engine's end of a telemetry channel. Cheap to clone.
#[derive(Clone)]
pub struct TelemetrySender {
    tx: SyncSender<Event>,
    dropped: Arc<AtomicU64>,
}

impl TelemetrySender {
    /// Sends without ever blocking: when the channel is full or closed the event is dropped and
    /// counted.
    pub fn send(&self, ev: Event) {
        match self.tx.try_send(ev) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped so far because the receiver was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A shared handle on the drop counter, for the receiving side to display.
    pub fn drop_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }
}

/// A bounded telemetry channel holding at most `capacity` events.
pub fn channel(capacity: usize) -> (TelemetrySender, Receiver<Event>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
    (
        TelemetrySender {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_channel_drops_and_counts() {
        let (tx, rx) = channel(2);
        for i in 0..5 {
            tx.send(Event::Token(TokenSample {
                phase: Phase::Decode,
                tokens: 1,
                micros: 1000,
                pos: i,
            }));
        }
        assert_eq!(tx.dropped(), 3);
        assert_eq!(rx.try_iter().count(), 2);
    }

    #[test]
    fn events_round_trip_through_json() {
        let evs = vec![
            Event::Token(TokenSample {
                phase: Phase::Prefill,
                tokens: 12,
                micros: 5000,
                pos: 12,
            }),
            Event::Sparsity(SparsitySample {
                active: vec![10, 20],
                n_ff: 1536,
                recall: Some(0.9),
                bands: (0..16).collect(),
                level: 0.5,
                predictor: true,
            }),
            Event::Memory(MemorySample {
                resident: 1 << 20,
                budget: None,
            }),
        ];
        for e in evs {
            let s = serde_json::to_string(&e).unwrap();
            let back: Event = serde_json::from_str(&s).unwrap();
            assert_eq!(back, e);
        }
    }
}
