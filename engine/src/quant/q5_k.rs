//! Q5_K: Q4_K plus a fifth bit per weight
//! (`d, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]`, 176 bytes).
//!
//! Low nibbles as Q4_K; the fifth bit of element 32·i + l is bit i of `qh[l]`, so q ∈ [0, 31].
//! w = d·scale·q - dmin·min. Activations are Q8_K.

use super::kquants::{
    add_lanes, finish_lanes, lane_sums, q8k_bsum, q8k_d, q8k_quants, scale_min_k4,
};
use super::{dequant_blocks, f16_at, q8_k};
use crate::ggml_type::QK_K;

const BYTES: usize = 176;

/// The 8 scales and 8 mins of a block.
#[inline(always)]
fn scales_mins(b: &[u8; BYTES]) -> ([i32; 8], [i32; 8]) {
    let (mut sc, mut mn) = ([0i32; 8], [0i32; 8]);
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, &b[4..16]);
        sc[j] = s as i32;
        mn[j] = m as i32;
    }
    (sc, mn)
}

/// The 256 quants of a block, in element order.
#[inline(always)]
fn unpack(b: &[u8; BYTES]) -> [i8; QK_K] {
    let qh = &b[16..48];
    let mut out = [0i8; QK_K];
    for (c, (out, qs)) in out
        .chunks_exact_mut(64)
        .zip(b[48..].chunks_exact(32))
        .enumerate()
    {
        let (lo, hi) = out.split_at_mut(32);
        let (bit_lo, bit_hi) = (1u8 << (2 * c), 2u8 << (2 * c));
        for (((l, h), q), qh) in lo.iter_mut().zip(hi).zip(qs).zip(qh) {
            *l = ((q & 0x0f) + if qh & bit_lo != 0 { 16 } else { 0 }) as i8;
            *h = ((q >> 4) + if qh & bit_hi != 0 { 16 } else { 0 }) as i8;
        }
    }
    out
}

/// `dequantize_row_q5_K`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<BYTES, QK_K>(src, dst) {
        let d = f16_at(b, 0);
        let dmin = f16_at(b, 2);
        let (sc, mn) = scales_mins(b);
        let q = unpack(b);
        for (g, (y, q)) in y.chunks_exact_mut(32).zip(q.chunks_exact(32)).enumerate() {
            let dl = d * sc[g] as f32;
            let ml = dmin * mn[g] as f32;
            for (y, &q) in y.iter_mut().zip(q) {
                *y = dl * q as f32 - ml;
            }
        }
    }
}

/// `ggml_vec_dot_q5_K_q8_K_generic`: as Q4_K.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sums = [0f32; 8];
    let mut sumf = 0f32;
    for (x, y) in super::dot_blocks::<BYTES, { q8_k::BYTES }>(n, QK_K, w, a) {
        let (sc, mn) = scales_mins(x);
        let mut sumi = 0i32;
        for j in 0..16 {
            sumi += q8k_bsum(y, j) * mn[j / 2];
        }
        let lanes = lane_sums::<32>(&unpack(x), q8k_quants(y), &sc);
        add_lanes(&mut sums, f16_at(x, 0) * q8k_d(y), &lanes);
        sumf -= f16_at(x, 2) * q8k_d(y) * sumi as f32;
    }
    finish_lanes(sumf, &sums)
}
