//! F32: plain little-endian floats, one element per "block".
//!
//! The dot product multiplies in f32 and accumulates in f64, as ggml's scalar `ggml_vec_dot_f32`
//! does (`ggml_float` is double), so long rows do not lose precision to the running sum.

use super::dequant_blocks;

/// Reads the little-endian floats of `src` (the bytes may be unaligned, so no cast).
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<4, 1>(src, dst) {
        y[0] = f32::from_le_bytes(*b);
    }
}

/// Σ w·a with f32 products summed in f64.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f64;
    for (x, y) in super::dot_blocks::<4, 4>(n, 1, w, a) {
        sum += (f32::from_le_bytes(*x) * f32::from_le_bytes(*y)) as f64;
    }
    sum as f32
}

/// Stores the activations as little-endian bytes.
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in super::quant_blocks::<1, 4>(src, dst) {
        *b = x[0].to_le_bytes();
    }
}

/// `Σ a[i]·b[i]` in sixteen f32 lanes reduced in a fixed order: the exact path's dot product
/// (the SIMD tiers are tested against it).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: lengths differ");
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}
