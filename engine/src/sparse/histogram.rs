//! A log-spaced histogram of magnitudes, for quantiles over millions of activations in fixed memory.
//!
//! Calibration needs, per layer, the value below which a given share of |act(gate)| falls. Keeping
//! every value would take gigabytes for a long calibration text; bins 0.1% apart in log scale give
//! quantiles far more precise than the threshold needs.

/// Smallest magnitude with its own bins; smaller ones (and zeros) share bin 0.
const MIN_LOG2: f64 = -40.0;
/// Largest magnitude with its own bins; larger ones share the last bin.
const MAX_LOG2: f64 = 24.0;
/// Bins per doubling by default: 0.14% apart.
const BINS_PER_OCTAVE: f64 = 512.0;

/// Counts of magnitudes in log-spaced bins.
#[derive(Debug, Clone)]
pub struct LogHistogram {
    counts: Vec<u64>,
    total: u64,
    per_octave: f64,
}

impl Default for LogHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LogHistogram {
    pub fn new() -> Self {
        Self::with_resolution(BINS_PER_OCTAVE)
    }

    /// A histogram with `per_octave` bins per doubling (coarser ones for when many are kept).
    pub fn with_resolution(per_octave: f64) -> Self {
        let n = ((MAX_LOG2 - MIN_LOG2) * per_octave) as usize + 2;
        LogHistogram {
            counts: vec![0; n],
            total: 0,
            per_octave,
        }
    }

    /// The bin of magnitude |v|.
    pub fn bin(&self, v: f32) -> usize {
        let a = v.abs() as f64;
        // Zeros and NaNs share bin 0.
        if a.is_nan() || a <= 0.0 {
            return 0;
        }
        let x = (a.log2() - MIN_LOG2) * self.per_octave;
        if x < 0.0 {
            0
        } else {
            (x as usize + 1).min(self.counts.len() - 1)
        }
    }

    /// Upper edge of a bin's magnitudes.
    pub fn upper(&self, bin: usize) -> f32 {
        if bin == 0 {
            return (2f64).powf(MIN_LOG2) as f32;
        }
        (2f64).powf(MIN_LOG2 + bin as f64 / self.per_octave) as f32
    }

    /// Counts |v| for every value.
    pub fn add_all(&mut self, values: &[f32]) {
        for &v in values {
            let b = self.bin(v);
            self.counts[b] += 1;
        }
        self.total += values.len() as u64;
    }

    /// Counts one value already mapped to its bin.
    pub fn add_bin(&mut self, bin: usize) {
        self.counts[bin] += 1;
        self.total += 1;
    }

    /// Adds another histogram of the same resolution.
    pub fn merge(&mut self, other: &LogHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// Share of values at most `v` in magnitude (to the bin's resolution).
    pub fn cdf(&self, v: f32) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let b = self.bin(v);
        self.counts[..=b].iter().sum::<u64>() as f64 / self.total as f64
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The magnitude below which a share `q` (0..=1) of the values fall.
    pub fn quantile(&self, q: f64) -> f32 {
        if self.total == 0 || q <= 0.0 {
            return 0.0;
        }
        let want = (q.min(1.0) * self.total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return self.upper(i);
            }
        }
        self.upper(self.counts.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_uniform_ramp() {
        let mut h = LogHistogram::new();
        let v: Vec<f32> = (1..=10_000).map(|i| i as f32 / 1000.0).collect();
        h.add_all(&v);
        for q in [0.1, 0.5, 0.9] {
            let got = h.quantile(q);
            let want = (q * 10.0) as f32;
            assert!((got / want - 1.0).abs() < 0.01, "q={q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(0.0), 0.0);
    }

    #[test]
    fn signs_and_zeros() {
        let mut h = LogHistogram::new();
        h.add_all(&[-2.0, 2.0, 0.0, 0.0]);
        assert!(h.quantile(0.5) < 1e-9);
        assert!((h.quantile(1.0) - 2.0).abs() < 0.01);
    }
}
