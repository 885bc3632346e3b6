//! Q8_K: the activation format of the k-quants
//! (`d: f32, qs: [i8; 256], bsums: [i16; 16]`, 292 bytes).
//!
//! A 256-element super-block with an f32 scale and the sums of each group of 16 quants: k-quants with
//! a per-group min (Q2_K, Q4_K, Q5_K) get that min's contribution from `bsums` without touching the
//! quants again. Quantization is `quantize_row_q8_K_ref` as llama.cpp has it today: the element with
//! the largest magnitude, sign included, maps to -127 (iscale = -127 / max), rounding is to nearest
//! even, and quants are clipped to 127 above.

use super::dequant_blocks;
use super::kquants::{q8k_d, q8k_quants};
use crate::ggml_type::QK_K;

pub(crate) const BYTES: usize = 292;

/// y = d · q (`dequantize_row_q8_K`).
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<BYTES, QK_K>(src, dst) {
        let d = q8k_d(b);
        for (y, &q) in y.iter_mut().zip(q8k_quants(b)) {
            *y = d * q as i8 as f32;
        }
    }
}

/// `quantize_row_q8_K_ref`.
///
/// An all-zero block gets d = 0 and zero quants; ggml leaves that block's `bsums` unwritten, here
/// they are zero (their true value).
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in super::quant_blocks::<QK_K, BYTES>(src, dst) {
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        let (head, bsums) = b[4..].split_at_mut(QK_K);
        for (q, &v) in head.iter_mut().zip(x) {
            // ggml's `nearest_int` (the 1.5·2^23 trick) is round-half-even for |v| < 2^22; here
            // |v| ≤ 127 or so.
            let v = (iscale * v).round_ties_even() as i32;
            *q = v.min(127) as i8 as u8;
        }
        for (g, s) in head.chunks_exact(16).zip(bsums.chunks_exact_mut(2)) {
            let sum: i32 = g.iter().map(|&q| q as i8 as i32).sum();
            s.copy_from_slice(&(sum as i16).to_le_bytes());
        }
        b[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}
