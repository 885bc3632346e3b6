//! F16: IEEE half floats.
//!
//! Conversion to f16 rounds to nearest even (the `half` crate, like `GGML_FP32_TO_FP16`); the dot
//! product widens both sides to f32, multiplies in f32 and sums in f64, as ggml's scalar
//! `ggml_vec_dot_f16`.

use super::{dequant_blocks, f16_at, put_f16};

/// Widens each half to f32 (exact).
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<2, 1>(src, dst) {
        y[0] = f16_at(b, 0);
    }
}

/// Σ w·a with f32 products summed in f64.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f64;
    for (x, y) in super::dot_blocks::<2, 2>(n, 1, w, a) {
        sum += (f16_at(x, 0) * f16_at(y, 0)) as f64;
    }
    sum as f32
}

/// Rounds each activation to the nearest f16 (ties to even; overflow gives ±inf).
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in super::quant_blocks::<1, 2>(src, dst) {
        put_f16(b, 0, x[0]);
    }
}
