//! Q6_K: 256 weights as 6-bit quants around 32 in 16 groups of 16 with signed 8-bit scales
//! (`ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`, 210 bytes).
//!
//! Per 128-element half (64 bytes of `ql`, 32 of `qh`): element l + 32·i, i in 0..4, takes its low
//! nibble from `ql[l + 32·(i & 1)]` (low nibble for i < 2, high for i ≥ 2) and its top two bits from
//! bits 2i..2i+1 of `qh[l]`. w = d · scale · (q - 32). Activations are Q8_K.

use super::kquants::{add_lanes, finish_lanes, lane_sums, q8k_d, q8k_quants};
use super::{dequant_blocks, f16_at, q8_k};
use crate::ggml_type::QK_K;

const BYTES: usize = 210;

/// The 16 group scales.
#[inline(always)]
fn scales(b: &[u8; BYTES]) -> [i32; 16] {
    let mut out = [0i32; 16];
    for (o, &s) in out.iter_mut().zip(&b[192..208]) {
        *o = s as i8 as i32;
    }
    out
}

/// The 256 signed quants of a block, in element order.
#[inline(always)]
fn unpack(b: &[u8; BYTES]) -> [i8; QK_K] {
    let mut out = [0i8; QK_K];
    for ((out, ql), qh) in out
        .chunks_exact_mut(128)
        .zip(b[..128].chunks_exact(64))
        .zip(b[128..192].chunks_exact(32))
    {
        for l in 0..32 {
            let h = qh[l];
            out[l] = ((ql[l] & 0x0f) | ((h & 3) << 4)) as i8 - 32;
            out[l + 32] = ((ql[l + 32] & 0x0f) | (((h >> 2) & 3) << 4)) as i8 - 32;
            out[l + 64] = ((ql[l] >> 4) | (((h >> 4) & 3) << 4)) as i8 - 32;
            out[l + 96] = ((ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    out
}

/// `dequantize_row_q6_K`: y = (d · scale) · q.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<BYTES, QK_K>(src, dst) {
        let d = f16_at(b, 208);
        let sc = scales(b);
        let q = unpack(b);
        for ((y, q), &s) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).zip(&sc) {
            let dl = d * s as f32;
            for (y, &q) in y.iter_mut().zip(q) {
                *y = dl * q as f32;
            }
        }
    }
}

/// `ggml_vec_dot_q6_K_q8_K_generic`: eight integer lanes per block (see `kquants`).
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sums = [0f32; 8];
    for (x, y) in super::dot_blocks::<BYTES, { q8_k::BYTES }>(n, QK_K, w, a) {
        let lanes = lane_sums::<16>(&unpack(x), q8k_quants(y), &scales(x));
        add_lanes(&mut sums, f16_at(x, 208) * q8k_d(y), &lanes);
    }
    finish_lanes(0.0, &sums)
}
