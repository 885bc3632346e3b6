//! NEON Q8_0 axpy: the sparse FFN adding active neurons' columns of `down` to its output.
//!
//! Each block's scale `s = d·alpha` is formed in scalar f32 as the reference does, the quants are
//! widened to f32 (`sxtl`, `scvtf`: exact) and `y + s·q` uses a separate multiply and add (no
//! `fmla`), so the result is the scalar kernel's, bit for bit.

use super::fp::{half_at, load_i8};
use crate::quant::q8_0::{axpy_blocks, BYTES, QK};
use core::arch::aarch64::*;

/// The sixteen signed quants at `p` (any alignment) as four vectors of f32, in order.
#[inline(always)]
unsafe fn q8x16(p: *const u8) -> [float32x4_t; 4] {
    let q = load_i8(p);
    let (lo, hi) = (vmovl_s8(vget_low_s8(q)), vmovl_high_s8(q));
    [
        vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))),
        vcvtq_f32_s32(vmovl_high_s16(lo)),
        vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))),
        vcvtq_f32_s32(vmovl_high_s16(hi)),
    ]
}

/// `y + s·q`, multiply then add.
#[inline(always)]
unsafe fn madd(acc: float32x4_t, s: f32, q: float32x4_t) -> float32x4_t {
    vaddq_f32(acc, vmulq_n_f32(q, s))
}

/// `y[..32·nb] += alpha · dequant(row)`.
///
/// # Safety
/// The CPU must have NEON; `y` must hold 32·nb elements and `row` nb blocks.
#[target_feature(enable = "neon")]
unsafe fn axpy_imp(y: *mut f32, alpha: f32, row: *const u8, nb: usize) {
    for b in 0..nb {
        let (p, yb) = (row.add(b * BYTES), y.add(b * QK));
        let s = half_at(p) * alpha;
        for h in 0..2 {
            let q = q8x16(p.add(2 + 16 * h));
            for (k, q) in q.into_iter().enumerate() {
                let at = yb.add(16 * h + 4 * k);
                vst1q_f32(at, madd(vld1q_f32(at), s, q));
            }
        }
    }
}

/// Four rows in order, `y` loaded and stored once per four elements.
///
/// # Safety
/// As [`axpy_imp`], for each of the four rows.
#[target_feature(enable = "neon")]
unsafe fn axpy_x4_imp(y: *mut f32, alpha: [f32; 4], rows: [*const u8; 4], nb: usize) {
    for b in 0..nb {
        let yb = y.add(b * QK);
        let mut p = [rows[0]; 4];
        let mut s = [0f32; 4];
        for i in 0..4 {
            p[i] = rows[i].add(b * BYTES);
            s[i] = half_at(p[i]) * alpha[i];
        }
        for h in 0..2 {
            let mut acc = [vdupq_n_f32(0.0); 4];
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = vld1q_f32(yb.add(16 * h + 4 * k));
            }
            for i in 0..4 {
                let q = q8x16(p[i].add(2 + 16 * h));
                for (acc, q) in acc.iter_mut().zip(q) {
                    *acc = madd(*acc, s[i], q);
                }
            }
            for (k, acc) in acc.into_iter().enumerate() {
                vst1q_f32(yb.add(16 * h + 4 * k), acc);
            }
        }
    }
}

/// NEON `axpy_q8_0`: bit for bit the scalar kernel.
pub(super) fn axpy_q8_0(y: &mut [f32], alpha: f32, row: &[u8]) {
    let nb = axpy_blocks(y, row);
    // SAFETY: only the Neon float table holds this function, handed out only when the CPU has
    // NEON; `axpy_blocks` checked that `y` holds 32·nb elements and `row` nb blocks.
    unsafe { axpy_imp(y.as_mut_ptr(), alpha, row.as_ptr(), nb) }
}

/// NEON `axpy_q8_0_x4`: bit for bit four scalar `axpy_q8_0` calls.
pub(super) fn axpy_q8_0_x4(y: &mut [f32], alpha: [f32; 4], rows: [&[u8]; 4]) {
    let nb = axpy_blocks(y, rows[0]);
    for r in &rows[1..] {
        axpy_blocks(y, r);
    }
    // SAFETY: as `axpy_q8_0`, for each of the four rows.
    unsafe { axpy_x4_imp(y.as_mut_ptr(), alpha, rows.map(|r| r.as_ptr()), nb) }
}
