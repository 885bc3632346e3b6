//! How many bytes of memory evaluating tokens must read at the least: the numerator of the
//! bandwidth bound that `bench` reports.
//!
//! One forward pass over a batch reads every weight matrix once (the token-embedding table only
//! for the batch's rows) and, in each layer, the keys and values of every cached position up to
//! the batch's last. A decode step is a batch of one, so it reads all of that for a single
//! token; prefill shares it among the batch's tokens. Anything a real kernel reads twice is
//! lost speed this figure makes visible.

use super::Model;

/// A model's per-pass memory traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Bytes of weights one pass reads regardless of its tokens: every matrix but the embedding
    /// table (the LM head included, even when it is the tied embedding), norms and biases.
    pub weights: f64,
    /// Of which the FFN matrices (what sparse decode reads less of).
    pub ffn: f64,
    /// Bytes of one embedding row, read per token.
    pub embd_row: f64,
    /// Keys and values of one cached position, all layers.
    pub kv_per_position: f64,
}

impl Traffic {
    /// The traffic of `model` with a KV cache holding `kv_per_position` bytes per position (see
    /// `Session::kv_bytes` / `Session::n_ctx`).
    pub fn of(model: &Model, kv_per_position: f64) -> Self {
        let w = &model.weights;
        let floats = |v: &[f32]| (v.len() * 4) as f64;
        let opt = |v: &Option<Vec<f32>>| v.as_deref().map_or(0.0, floats);
        let vectors: f64 = w
            .layers
            .iter()
            .map(|l| {
                floats(&l.attn_norm) + floats(&l.ffn_norm) + opt(&l.bq) + opt(&l.bk) + opt(&l.bv)
            })
            .sum::<f64>()
            + floats(&w.output_norm)
            + opt(&w.rope_freqs);
        Traffic {
            weights: w.matrix_bytes() as f64 + vectors,
            ffn: w.ffn_bytes() as f64,
            embd_row: w.token_embd.row_bytes as f64,
            kv_per_position,
        }
    }

    /// The same traffic with the FFN reading `ffn` bytes per pass instead of all of it (sparse
    /// decode, as measured).
    pub fn with_ffn(self, ffn: f64) -> Self {
        Traffic {
            weights: self.weights - self.ffn + ffn,
            ffn,
            ..self
        }
    }

    /// Bytes read per token evaluating `n` tokens after `depth` cached ones, in batches of at
    /// most `batch` tokens (decode: `batch` = 1).
    pub fn per_token(&self, depth: usize, n: usize, batch: usize) -> f64 {
        if n == 0 {
            return 0.0;
        }
        let batch = batch.clamp(1, n);
        let mut total = 0.0;
        let mut start = 0;
        while start < n {
            let b = batch.min(n - start);
            let end = depth + start + b;
            total += self.weights + self.embd_row * b as f64 + self.kv_per_position * end as f64;
            start += b;
        }
        total / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Traffic = Traffic {
        weights: 1000.0,
        ffn: 600.0,
        embd_row: 10.0,
        kv_per_position: 2.0,
    };

    #[test]
    fn decode_reads_all_weights_per_token_and_the_cache_up_to_each_position() {
        // One token at depth 0: weights, one row, one position of cache.
        assert_eq!(T.per_token(0, 1, 1), 1000.0 + 10.0 + 2.0);
        // Four tokens after 100: positions 101..=104, mean 102.5.
        assert_eq!(T.per_token(100, 4, 1), 1010.0 + 2.0 * 102.5);
    }

    #[test]
    fn prefill_shares_the_weights_among_a_batch() {
        // 8 tokens in one batch: weights once, 8 rows, the cache up to position 8 once.
        assert_eq!(T.per_token(0, 8, 512), (1000.0 + 80.0 + 16.0) / 8.0);
        // In two batches of 4: weights twice, cache up to 4 then up to 8.
        assert_eq!(T.per_token(0, 8, 4), (2000.0 + 80.0 + 8.0 + 16.0) / 8.0);
        assert_eq!(T.per_token(0, 0, 4), 0.0);
    }

    #[test]
    fn sparse_decode_replaces_the_ffn_share() {
        let s = T.with_ffn(150.0);
        assert_eq!(s.weights, 550.0);
        assert_eq!(s.per_token(0, 1, 1), 550.0 + 12.0);
    }
}
