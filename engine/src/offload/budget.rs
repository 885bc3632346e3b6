//! The memory budget: parsing `--mem-budget SIZE` and splitting it into the fixed region (what
//! must stay resident) and what is left for FFN weights.
//!
//! The fixed region is everything decode touches on every token whatever the sparsity: attention
//! matrices, norms, embeddings and LM head, the KV cache, the predictor, activation buffers, and
//! the staging buffers the FFN streams through. FFN neurons and layers fill what is left.

use crate::error::{Error, Result};

/// Parses a size such as `64M`, `1.5G`, `512K`, `100MiB` or `1000000` (bytes). Suffixes are
/// binary (K = 1024), as memory limits are.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        Error::Invalid(format!(
            "cannot read '{s}' as a size: use a number with K, M or G, e.g. 64M or 1.5G"
        ))
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = v * mult;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Bytes as MiB with one decimal, for messages.
pub fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// What must stay in memory under a budget, by part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedRegion {
    /// Attention matrices, norms, embeddings, LM head (and the GGUF header).
    pub weights: u64,
    pub kv: u64,
    /// The low-rank predictor, when it is on.
    pub predictor: u64,
    /// Activation, logits and matmul scratch buffers.
    pub buffers: u64,
    /// Buffers FFN layers stream through (two layers, so one loads while the other computes).
    pub staging: u64,
}

impl FixedRegion {
    pub fn total(&self) -> u64 {
        self.weights + self.kv + self.predictor + self.buffers + self.staging
    }

    /// One line naming the parts.
    pub fn describe(&self) -> String {
        format!(
            "{} (weights outside the FFN {}, KV cache {}, predictor {}, buffers {}, FFN staging {})",
            mib(self.total()),
            mib(self.weights),
            mib(self.kv),
            mib(self.predictor),
            mib(self.buffers),
            mib(self.staging)
        )
    }

    /// Bytes of the budget left for FFN weights, or the error a user sees when the budget does
    /// not even hold the fixed region.
    pub fn left_for_ffn(&self, budget: u64) -> Result<u64> {
        let need = self.total();
        if budget < need {
            // Round the advice up to the next MiB so it works when typed back in.
            let min_mib = need.div_ceil(1024 * 1024);
            return Err(Error::Invalid(format!(
                "a memory budget of {} is below what this model needs resident at this context: {}. Use --mem-budget {min_mib}M or more (or a smaller context with -c)",
                mib(budget),
                self.describe()
            )));
        }
        Ok(budget - need)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        for bad in ["", "M", "12Q", "-5M", "0", "1e3M", "1.2.3M"] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains("cannot read"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_budget_below_the_fixed_region_names_the_minimum() {
        let f = FixedRegion {
            weights: 40 << 20,
            kv: 10 << 20,
            predictor: 0,
            buffers: 1 << 20,
            staging: (3 << 20) + 5,
        };
        assert_eq!(f.left_for_ffn(60 << 20).unwrap(), (6 << 20) - 5);
        let e = f.left_for_ffn(50 << 20).unwrap_err().to_string();
        assert!(e.contains("--mem-budget 55M"), "{e}");
        assert!(e.contains("KV cache 10.0 MiB"), "{e}");
    }
}
