//! The key/value cache: per layer, one row of keys and one of values per position.
//!
//! Exact mode stores f32; fast mode stores f16 (as raw bits) as llama.cpp does by default, halving
//! its memory. Both are allocated zeroed, so the pages of positions never reached are never touched
//! and cost no resident memory.

/// Storage for one layer's keys or values, `n_ctx` rows of `width`.
pub enum KvRows {
    F32(Vec<f32>),
    /// IEEE half bits.
    F16(Vec<u16>),
}

impl KvRows {
    fn new(f16: bool, len: usize) -> Self {
        if f16 {
            KvRows::F16(vec![0u16; len])
        } else {
            KvRows::F32(vec![0.0; len])
        }
    }

    /// Writes `src` at element offset `at` (rounded to nearest-even f16 in the f16 cache).
    pub fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            KvRows::F32(v) => v[at..at + src.len()].copy_from_slice(src),
            KvRows::F16(v) => {
                for (d, &s) in v[at..at + src.len()].iter_mut().zip(src) {
                    *d = half::f16::from_f32(s).to_bits();
                }
            }
        }
    }

    pub fn bytes(&self) -> usize {
        match self {
            KvRows::F32(v) => v.len() * 4,
            KvRows::F16(v) => v.len() * 2,
        }
    }
}

/// Keys and values of every layer.
pub struct KvCache {
    pub n_ctx: usize,
    pub k_width: usize,
    pub v_width: usize,
    pub k: Vec<KvRows>,
    pub v: Vec<KvRows>,
}

impl KvCache {
    pub fn new(n_layer: usize, n_ctx: usize, k_width: usize, v_width: usize, f16: bool) -> Self {
        KvCache {
            n_ctx,
            k_width,
            v_width,
            k: (0..n_layer)
                .map(|_| KvRows::new(f16, n_ctx * k_width))
                .collect(),
            v: (0..n_layer)
                .map(|_| KvRows::new(f16, n_ctx * v_width))
                .collect(),
        }
    }

    /// Total bytes reserved (resident only as positions fill).
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(KvRows::bytes).sum()
    }
}
