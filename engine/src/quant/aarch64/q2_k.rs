//! Q2_K × Q8_K: 2-bit quants in sixteen 16-element groups, each with a 4-bit scale and 4-bit min.
//!
//! Element 32·j + l of half h is bits 2j..2j + 1 of `qs[32·h + l]`. Per super-block
//! `d·dy · Σ scale·Σq·q8 - dmin·dy · Σ min·bsum`, with the scalar reference's float expression.

use super::fp::{half_at, load_i8};
use super::idot::I8Dot;
use super::kquants::{q8k_bsums, q8k_d, q8k_quants, super_blocks, Q8K_BYTES};
use core::arch::aarch64::*;

const BYTES: usize = 84;

/// `vec_dot` on tier `D`.
///
/// # Safety
/// The CPU must have `D`'s features.
#[inline(always)]
pub(super) unsafe fn kernel<D: I8Dot>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = super_blocks(n, BYTES, w, a);
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let m3 = vdupq_n_u8(3);
    let mut sumf = 0f32;
    for i in 0..nb {
        let x = wp.add(i * BYTES);
        let y = ap.add(i * Q8K_BYTES);
        let sc: &[u8; 16] = &*(x as *const [u8; 16]);
        // Σ min·bsum: mins are the high nibbles of the scale bytes.
        let mins = vshrq_n_u8::<4>(vld1q_u8(x));
        let m_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mins)));
        let m_hi = vreinterpretq_s16_u16(vmovl_high_u8(mins));
        let (b0, b1) = q8k_bsums(y);
        let p = vmull_s16(vget_low_s16(b0), vget_low_s16(m_lo));
        let p = vmlal_high_s16(p, b0, m_lo);
        let p = vmlal_s16(p, vget_low_s16(b1), vget_low_s16(m_hi));
        let summs = vaddvq_s32(vmlal_high_s16(p, b1, m_hi));
        let q8 = q8k_quants(y);
        let zero = vdupq_n_s32(0);
        let mut acc = zero;
        for h in 0..2 {
            let qa = vld1q_u8(x.add(16 + 32 * h));
            let qb = vld1q_u8(x.add(32 + 32 * h));
            for j in 0..4 {
                let shift = vdupq_n_s8(-2 * j as i8);
                let la = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(qa, shift), m3));
                let lb = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(qb, shift), m3));
                let g = 8 * h + 2 * j;
                let y8 = q8.add(16 * g);
                acc = vmlaq_n_s32(acc, D::dot(zero, la, load_i8(y8)), (sc[g] & 15) as i32);
                acc = vmlaq_n_s32(
                    acc,
                    D::dot(zero, lb, load_i8(y8.add(16))),
                    (sc[g + 1] & 15) as i32,
                );
            }
        }
        let dall = q8k_d(y) * half_at(x.add(80));
        let dmin = q8k_d(y) * half_at(x.add(82));
        sumf += dall * vaddvq_s32(acc) as f32 - dmin * summs as f32;
    }
    sumf
}

kquant_entry_points!(kernel);
