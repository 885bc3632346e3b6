//! Q8_1: Q8_0 plus the block sum (`d: f16, s: f16, qs: [i8; 32]`, 36 bytes).
//!
//! The activation format for the weight types with an offset (Q4_1, Q5_1): their `m · Σa` term is
//! then one multiply by `s = d · Σq` instead of a second pass over the block. Quantization is
//! `quantize_row_q8_1_ref`.

use super::{dequant_blocks, f16_at, put_f16};

pub(crate) const QK: usize = 32;
pub(crate) const BYTES: usize = 36;

/// The block's quants as signed integers.
#[inline(always)]
pub(crate) fn quant(b: &[u8; BYTES], j: usize) -> i32 {
    b[4 + j] as i8 as i32
}

/// y = q · d (`s` is redundant for dequantization).
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<BYTES, QK>(src, dst) {
        let d = f16_at(b, 0);
        for (j, y) in y.iter_mut().enumerate() {
            *y = quant(b, j) as f32 * d;
        }
    }
}

/// `quantize_row_q8_1_ref`: as Q8_0, and s = fp16(d · Σq) from the rounded quants.
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in super::quant_blocks::<QK, BYTES>(src, dst) {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in b[4..].iter_mut().zip(x) {
            let qi = (v * id).round() as i8;
            sum += qi as i32;
            *q = qi as u8;
        }
        put_f16(b, 0, d);
        put_f16(b, 2, sum as f32 * d);
    }
}
