//! Q3_K: 256 weights as 3-bit signed quants in 16 groups of 16 with 6-bit signed scales
//! (`hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16`, 110 bytes).
//!
//! The low two bits come from `qs` laid out as Q2_K; the third bit of element 32·i + l is bit i of
//! `hmask[l]`, and it is *inverted*: a clear bit subtracts 4, so q ∈ [-4, 3]. w = d · (scale - 32) · q.
//! Activations are Q8_K.

use super::kquants::{add_lanes, finish_lanes, lane_sums, q3k_scales, q8k_d, q8k_quants};
use super::{dequant_blocks, f16_at, q8_k};
use crate::ggml_type::QK_K;

const BYTES: usize = 110;

/// The 256 signed quants of a block, in element order.
#[inline(always)]
fn unpack(b: &[u8; BYTES]) -> [i8; QK_K] {
    let hmask = &b[..32];
    let mut out = [0i8; QK_K];
    for (half, (out, qs)) in out
        .chunks_exact_mut(128)
        .zip(b[32..96].chunks_exact(32))
        .enumerate()
    {
        for (j, out) in out.chunks_exact_mut(32).enumerate() {
            let shift = 2 * j;
            let bit = 1u8 << (half * 4 + j);
            for ((o, q), h) in out.iter_mut().zip(qs).zip(hmask) {
                let low = ((q >> shift) & 3) as i8;
                *o = if h & bit != 0 { low } else { low - 4 };
            }
        }
    }
    out
}

/// `dequantize_row_q3_K`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<BYTES, QK_K>(src, dst) {
        let d = f16_at(b, 108);
        let scales = q3k_scales(&b[96..108]);
        let q = unpack(b);
        for ((y, q), &s) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).zip(&scales) {
            let dl = d * s as f32;
            for (y, &q) in y.iter_mut().zip(q) {
                *y = dl * q as f32;
            }
        }
    }
}

/// `ggml_vec_dot_q3_K_q8_K_generic`: eight integer lanes per block, scaled by `dx · dy` into eight
/// f32 lanes summed at the end of the row.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sums = [0f32; 8];
    for (x, y) in super::dot_blocks::<BYTES, { q8_k::BYTES }>(n, QK_K, w, a) {
        let scales = q3k_scales(&x[96..108]);
        let lanes = lane_sums::<16>(&unpack(x), q8k_quants(y), &scales);
        add_lanes(&mut sums, f16_at(x, 108) * q8k_d(y), &lanes);
    }
    finish_lanes(0.0, &sums)
}
