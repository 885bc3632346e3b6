//! What the FFN read per token, for `bench` and `perplexity`: the numbers behind the README's
//! sparsity table, printed the same way by both.

use sparsetop_engine::sparse::SparseStats;
use sparsetop_engine::{Model, Session};

/// FFN weight traffic per token, split by matrix.
pub struct FfnReport {
    /// Tokens the figures average over.
    pub tokens: u64,
    pub gate: f64,
    pub up: f64,
    pub down: f64,
    pub predictor: f64,
    /// Share of neurons active per token (1 when dense).
    pub active_share: f64,
    /// Predictor recall, when it was measured.
    pub recall: Option<f64>,
    /// Bytes a dense token reads of the FFN, for comparison.
    pub dense: f64,
}

impl FfnReport {
    /// From a session's sparse counters, or the dense figures when sparse decode is off.
    pub fn of(session: &Session) -> Self {
        let stats = session
            .sparse()
            .filter(|s| s.config.level > 0.0)
            .map(|s| s.stats);
        Self::from_stats(session.model(), stats.as_ref())
    }

    pub fn from_stats(model: &Model, stats: Option<&SparseStats>) -> Self {
        let w = &model.weights;
        let dense = w.ffn_bytes() as f64;
        match stats.filter(|s| s.tokens > 0) {
            None => {
                let (g, u, d) = w.layers.iter().fold((0, 0, 0), |(g, u, d), l| {
                    (g + l.gate.bytes(), u + l.up.bytes(), d + l.down.bytes())
                });
                FfnReport {
                    tokens: 0,
                    gate: g as f64,
                    up: u as f64,
                    down: d as f64,
                    predictor: 0.0,
                    active_share: 1.0,
                    recall: None,
                    dense,
                }
            }
            Some(s) => {
                let t = s.tokens as f64;
                let neurons = (w.layers.len() * model.config.n_ff) as f64;
                FfnReport {
                    tokens: s.tokens,
                    gate: s.gate_bytes as f64 / t,
                    up: s.up_bytes as f64 / t,
                    down: s.down_bytes as f64 / t,
                    predictor: s.predictor_bytes as f64 / t,
                    active_share: s.active as f64 / (t * neurons),
                    recall: (s.recall_total > 0)
                        .then(|| s.recall_found as f64 / s.recall_total as f64),
                    dense,
                }
            }
        }
    }

    pub fn total(&self) -> f64 {
        self.gate + self.up + self.down + self.predictor
    }

    /// One human-readable line.
    pub fn line(&self) -> String {
        let kb = |b: f64| b / 1024.0;
        let mut s = format!(
            "{:.0} KiB of weights per token ({:.0}% of dense): gate {:.0}, up {:.0}, down {:.0}, predictor {:.0} KiB; {:.1}% of neurons active",
            kb(self.total()),
            100.0 * self.total() / self.dense.max(1.0),
            kb(self.gate),
            kb(self.up),
            kb(self.down),
            kb(self.predictor),
            100.0 * self.active_share
        );
        if let Some(r) = self.recall {
            s.push_str(&format!("; predictor recall {:.1}%", 100.0 * r));
        }
        s
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "tokens": self.tokens,
            "bytes_per_token": self.total(),
            "gate": self.gate,
            "up": self.up,
            "down": self.down,
            "predictor": self.predictor,
            "dense_bytes_per_token": self.dense,
            "active_share": self.active_share,
            "recall": self.recall,
        })
    }
}
