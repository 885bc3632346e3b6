//! Q8_0: blocks of 32 signed bytes with one f16 scale (`d: f16, qs: [i8; 32]`, 34 bytes).
//!
//! Both a weight type and the activation format for Q4_0 / Q5_0 / Q8_0 weights. Quantization is
//! `quantize_row_q8_0_ref`: d = max|x| / 127 and q = roundf(x / d) (ties away from zero).

use super::{dequant_blocks, f16_at, put_f16};

pub(crate) const QK: usize = 32;
pub(crate) const BYTES: usize = 34;

/// The block's quants as signed integers.
#[inline(always)]
pub(crate) fn quant(b: &[u8; BYTES], j: usize) -> i32 {
    b[2 + j] as i8 as i32
}

/// y = q · d.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<BYTES, QK>(src, dst) {
        let d = f16_at(b, 0);
        for (j, y) in y.iter_mut().enumerate() {
            *y = quant(b, j) as f32 * d;
        }
    }
}

/// Per block an exact integer dot product, then `sumi · (dx · dy)` as `ggml_vec_dot_q8_0_q8_0`.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in super::dot_blocks::<BYTES, BYTES>(n, QK, w, a) {
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += quant(x, j) * quant(y, j);
        }
        sumf += sumi as f32 * (f16_at(x, 0) * f16_at(y, 0));
    }
    sumf
}

/// `quantize_row_q8_0_ref`.
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in super::quant_blocks::<QK, BYTES>(src, dst) {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(b, 0, d);
        for (q, v) in b[2..].iter_mut().zip(x) {
            // `round` is C's roundf (half away from zero); `as` saturates where C would be UB.
            *q = (v * id).round() as i8 as u8;
        }
    }
}
