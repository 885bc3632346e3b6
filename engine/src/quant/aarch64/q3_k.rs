//! Q3_K × Q8_K: 2-bit quants plus an inverted third bit (`hmask`), q ∈ [-4, 3], sixteen
//! 16-element groups with 6-bit signed scales.
//!
//! Element 32·i + l (i < 8) takes bits 2·(i % 4) of `qs[32·(i / 4) + l]` and bit i of `hmask[l]`;
//! it is built as `(low | 4·bit) - 4`.

use super::fp::{half_at, load_i8};
use super::idot::I8Dot;
use super::kquants::{q8k_d, q8k_quants, super_blocks, Q8K_BYTES};
use crate::quant::kquants::q3k_scales;
use core::arch::aarch64::*;

const BYTES: usize = 110;

/// `vec_dot` on tier `D`.
///
/// # Safety
/// The CPU must have `D`'s features.
#[inline(always)]
pub(super) unsafe fn kernel<D: I8Dot>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = super_blocks(n, BYTES, w, a);
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let m3 = vdupq_n_u8(3);
    let four = vdupq_n_u8(4);
    let mut sumf = 0f32;
    for i in 0..nb {
        let x = wp.add(i * BYTES);
        let y = ap.add(i * Q8K_BYTES);
        let scales = q3k_scales(&*(x.add(96) as *const [u8; 12]));
        let q8 = q8k_quants(y);
        let (hm0, hm1) = (vld1q_u8(x), vld1q_u8(x.add(16)));
        let zero = vdupq_n_s32(0);
        let mut acc = zero;
        for h in 0..2 {
            let qa = vld1q_u8(x.add(32 + 32 * h));
            let qb = vld1q_u8(x.add(48 + 32 * h));
            for j in 0..4 {
                let chunk = 4 * h + j;
                let shift = vdupq_n_s8(-2 * j as i8);
                let bit = vdupq_n_u8(1 << chunk);
                let la = vandq_u8(vshlq_u8(qa, shift), m3);
                let lb = vandq_u8(vshlq_u8(qb, shift), m3);
                let ha = vandq_u8(vtstq_u8(hm0, bit), four);
                let hb = vandq_u8(vtstq_u8(hm1, bit), four);
                let qa = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(la, ha)), vdupq_n_s8(4));
                let qb = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lb, hb)), vdupq_n_s8(4));
                let y8 = q8.add(32 * chunk);
                acc = vmlaq_n_s32(acc, D::dot(zero, qa, load_i8(y8)), scales[2 * chunk]);
                acc = vmlaq_n_s32(
                    acc,
                    D::dot(zero, qb, load_i8(y8.add(16))),
                    scales[2 * chunk + 1],
                );
            }
        }
        sumf += half_at(x.add(108)) * q8k_d(y) * vaddvq_s32(acc) as f32;
    }
    sumf
}

kquant_entry_points!(kernel);
