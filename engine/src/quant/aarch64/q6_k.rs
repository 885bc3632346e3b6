//! Q6_K × Q8_K: 6-bit quants around 32 in sixteen 16-element groups with signed 8-bit scales.
//!
//! Per 128-element half, `ql` (64 bytes) gives low nibbles of elements 0..64 and high nibbles of
//! 64..128, `qh` (32 bytes) two top bits per element; the sixteen-byte vectors built here are the
//! groups in element order, so group g meets Q8_K bytes 16g..16g + 16.

use super::fp::{half_at, load_i8};
use super::idot::I8Dot;
use super::kquants::{q8k_d, q8k_quants, super_blocks, Q8K_BYTES};
use core::arch::aarch64::*;

const BYTES: usize = 210;

/// `vec_dot` on tier `D`.
///
/// # Safety
/// The CPU must have `D`'s features.
#[inline(always)]
pub(super) unsafe fn kernel<D: I8Dot>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = super_blocks(n, BYTES, w, a);
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let m4 = vdupq_n_u8(0x0f);
    let m30 = vdupq_n_u8(0x30);
    let m3 = vdupq_n_u8(0x03);
    let s32 = vdupq_n_s8(32);
    let mut sumf = 0f32;
    for i in 0..nb {
        let x = wp.add(i * BYTES);
        let y = ap.add(i * Q8K_BYTES);
        let q8 = q8k_quants(y);
        let zero = vdupq_n_s32(0);
        let mut acc = zero;
        for h in 0..2 {
            let ql = x.add(64 * h);
            let qh = x.add(128 + 32 * h);
            let scales = x.add(192 + 8 * h);
            let y8 = q8.add(128 * h);
            let (l0, l1, l2, l3) = (
                vld1q_u8(ql),
                vld1q_u8(ql.add(16)),
                vld1q_u8(ql.add(32)),
                vld1q_u8(ql.add(48)),
            );
            let (h0, h1) = (vld1q_u8(qh), vld1q_u8(qh.add(16)));
            let groups = [
                vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8::<4>(vandq_u8(h0, m3))),
                vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8::<4>(vandq_u8(h1, m3))),
                vorrq_u8(vandq_u8(l2, m4), vandq_u8(vshlq_n_u8::<2>(h0), m30)),
                vorrq_u8(vandq_u8(l3, m4), vandq_u8(vshlq_n_u8::<2>(h1), m30)),
                vorrq_u8(vshrq_n_u8::<4>(l0), vandq_u8(h0, m30)),
                vorrq_u8(vshrq_n_u8::<4>(l1), vandq_u8(h1, m30)),
                vorrq_u8(vshrq_n_u8::<4>(l2), vandq_u8(vshrq_n_u8::<2>(h0), m30)),
                vorrq_u8(vshrq_n_u8::<4>(l3), vandq_u8(vshrq_n_u8::<2>(h1), m30)),
            ];
            for (g, q) in groups.into_iter().enumerate() {
                let q = vsubq_s8(vreinterpretq_s8_u8(q), s32);
                let p = D::dot(zero, q, load_i8(y8.add(16 * g)));
                acc = vmlaq_n_s32(acc, p, *scales.add(g) as i8 as i32);
            }
        }
        sumf += half_at(x.add(208)) * q8k_d(y) * vaddvq_s32(acc) as f32;
    }
    sumf
}

kquant_entry_points!(kernel);
