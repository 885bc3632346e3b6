//! Q2_K: 256 weights as 2-bit quants in 16 groups of 16, each group with a 4-bit scale and 4-bit min
//! (`scales: [u8; 16], qs: [u8; 64], d: f16, dmin: f16`, 84 bytes).
//!
//! Group g has scale `d · (scales[g] & 15)` and min `dmin · (scales[g] >> 4)`; w = scale · q - min.
//! Each 128-element half uses 32 bytes of `qs`: element 32·j + l of the half is bits 2j..2j+1 of byte
//! l. Activations are Q8_K, whose group sums give the min term.

use super::kquants::{q8k_bsum, q8k_d, q8k_quants};
use super::{dequant_blocks, f16_at, q8_k};
use crate::ggml_type::QK_K;

const BYTES: usize = 84;

/// The 256 two-bit quants of a block, in element order.
#[inline(always)]
fn unpack(b: &[u8; BYTES]) -> [u8; QK_K] {
    let mut out = [0u8; QK_K];
    for (out, qs) in out.chunks_exact_mut(128).zip(b[16..80].chunks_exact(32)) {
        for (j, out) in out.chunks_exact_mut(32).enumerate() {
            for (o, q) in out.iter_mut().zip(qs) {
                *o = (q >> (2 * j)) & 3;
            }
        }
    }
    out
}

/// `dequantize_row_q2_K`: y = (d · scale) · q - dmin · min.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<BYTES, QK_K>(src, dst) {
        let d = f16_at(b, 80);
        let dmin = f16_at(b, 82);
        let q = unpack(b);
        for ((y, q), &sc) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).zip(&b[..16]) {
            let dl = d * (sc & 0x0f) as i32 as f32;
            let ml = dmin * (sc >> 4) as i32 as f32;
            for (y, &q) in y.iter_mut().zip(q) {
                *y = dl * q as i32 as f32 - ml;
            }
        }
    }
}

/// `ggml_vec_dot_q2_K_q8_K_generic`: per block the integer sums Σ scale·q·q8 and Σ min·bsum, then
/// `dall · isum - dmin · summs` with both float scales pre-multiplied by the Q8_K scale.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in super::dot_blocks::<BYTES, { q8_k::BYTES }>(n, QK_K, w, a) {
        let scales = &x[..16];
        let q8 = q8k_quants(y);
        let mut summs = 0i32;
        for (j, &sc) in scales.iter().enumerate() {
            summs += q8k_bsum(y, j) * (sc >> 4) as i32;
        }
        let mut isum = 0i32;
        for (half, qs) in x[16..80].chunks_exact(32).enumerate() {
            for j in 0..4 {
                let shift = 2 * j;
                for (k, qs) in qs.chunks_exact(16).enumerate() {
                    let g = half * 8 + j * 2 + k;
                    let q8 = &q8[g * 16..g * 16 + 16];
                    let mut isuml = 0i32;
                    for (q, &a) in qs.iter().zip(q8) {
                        isuml += a as i8 as i32 * ((q >> shift) & 3) as i32;
                    }
                    isum += (scales[g] & 0x0f) as i32 * isuml;
                }
            }
        }
        let dall = q8k_d(y) * f16_at(x, 80);
        let dmin = q8k_d(y) * f16_at(x, 82);
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}
