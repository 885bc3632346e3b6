//! Q4_K × Q8_K: eight 32-element groups of nibbles with 6-bit scales and mins.
//!
//! Per super-block: `d·dy · Σ scale·Σq·q8 - dmin·dy · Σ min·bsum`, both sums exact integers.

use super::fp::{half_at, load_i8};
use super::idot::I8Dot;
use super::kquants::{min_sum_32, q8k_d, q8k_quants, super_blocks, Q8K_BYTES};
use crate::quant::kquants::scale_min_k4;
use core::arch::aarch64::*;

const BYTES: usize = 144;

/// `vec_dot` on tier `D`.
///
/// # Safety
/// The CPU must have `D`'s features.
#[inline(always)]
pub(super) unsafe fn kernel<D: I8Dot>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = super_blocks(n, BYTES, w, a);
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let m4 = vdupq_n_u8(0x0f);
    let mut sumf = 0f32;
    for i in 0..nb {
        let x = wp.add(i * BYTES);
        let y = ap.add(i * Q8K_BYTES);
        let packed: &[u8; 12] = &*(x.add(4) as *const [u8; 12]);
        let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
        for j in 0..8 {
            (sc[j], mn[j]) = scale_min_k4(j, packed);
        }
        let summ = min_sum_32(y, &mn);
        let q8 = q8k_quants(y);
        let zero = vdupq_n_s32(0);
        let mut acc = zero;
        for c in 0..4 {
            let q0 = vld1q_u8(x.add(16 + 32 * c));
            let q1 = vld1q_u8(x.add(32 + 32 * c));
            let y8 = q8.add(64 * c);
            let lo = vreinterpretq_s8_u8(vandq_u8(q0, m4));
            let p = D::dot(zero, lo, load_i8(y8));
            let lo = vreinterpretq_s8_u8(vandq_u8(q1, m4));
            let p = D::dot(p, lo, load_i8(y8.add(16)));
            acc = vmlaq_n_s32(acc, p, sc[2 * c] as i32);
            let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q0));
            let p = D::dot(zero, hi, load_i8(y8.add(32)));
            let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q1));
            let p = D::dot(p, hi, load_i8(y8.add(48)));
            acc = vmlaq_n_s32(acc, p, sc[2 * c + 1] as i32);
        }
        let dy = q8k_d(y);
        let d = half_at(x) * dy;
        let dmin = half_at(x.add(2)) * dy;
        sumf += d * vaddvq_s32(acc) as f32 - dmin * summ as f32;
    }
    sumf
}

kquant_entry_points!(kernel);
