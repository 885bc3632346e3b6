//! F16: the weight-type dot product and the attention kernels over the f16 KV cache, widening
//! halves with `fcvtl` (exact).
//!
//! `dot_f32_f16` and `axpy_f16` reproduce the scalar kernels bit for bit (same lanes, separate
//! multiply and add); `vec_dot` sums its exact f16·f16 products in f64 lanes, so it differs from
//! the reference's ordered f64 sum only in the rounding of that sum.

use super::fp::{load_f16, load_f32, widen_hi, widen_lo};
use crate::quant::f16::widen;
use core::arch::aarch64::*;

/// # Safety
/// The CPU must have NEON.
#[target_feature(enable = "neon")]
unsafe fn vec_dot_imp(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = (&w[..2 * n], &a[..2 * n]);
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut s = [vdupq_n_f64(0.0); 4];
    let body = n / 8 * 8;
    for i in (0..body).step_by(8) {
        let x = load_f16(wp.add(2 * i));
        let y = load_f16(ap.add(2 * i));
        // A product of two halves has at most 22 significant bits: exact in f32.
        let p0 = vmulq_f32(widen_lo(x), widen_lo(y));
        let p1 = vmulq_f32(widen_hi(x), widen_hi(y));
        s[0] = vaddq_f64(s[0], vcvt_f64_f32(vget_low_f32(p0)));
        s[1] = vaddq_f64(s[1], vcvt_high_f64_f32(p0));
        s[2] = vaddq_f64(s[2], vcvt_f64_f32(vget_low_f32(p1)));
        s[3] = vaddq_f64(s[3], vcvt_high_f64_f32(p1));
    }
    let mut sum = vaddvq_f64(vaddq_f64(vaddq_f64(s[0], s[1]), vaddq_f64(s[2], s[3])));
    for (x, y) in w[2 * body..]
        .chunks_exact(2)
        .zip(a[2 * body..].chunks_exact(2))
    {
        sum += (widen(x.try_into().unwrap()) * widen(y.try_into().unwrap())) as f64;
    }
    sum as f32
}

/// NEON `vec_dot` for F16.
pub(super) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only the Neon and Dotprod tables hold this function, and `kernels_for` hands those
    // out only when the CPU has NEON.
    unsafe { vec_dot_imp(n, w, a) }
}

/// # Safety
/// The CPU must have NEON.
#[target_feature(enable = "neon")]
unsafe fn dot_f32_f16_imp(a: &[f32], b: &[u16]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f32_f16: lengths differ");
    let body = a.len() / 16 * 16;
    let (ap, bp) = (a.as_ptr() as *const u8, b.as_ptr() as *const u8);
    let mut acc = [vdupq_n_f32(0.0); 4];
    for i in (0..body).step_by(16) {
        for k in 0..2 {
            let h = load_f16(bp.add(2 * (i + 8 * k)));
            let x0 = load_f32(ap.add(4 * (i + 8 * k)));
            let x1 = load_f32(ap.add(4 * (i + 8 * k + 4)));
            acc[2 * k] = vaddq_f32(acc[2 * k], vmulq_f32(x0, widen_lo(h)));
            acc[2 * k + 1] = vaddq_f32(acc[2 * k + 1], vmulq_f32(x1, widen_hi(h)));
        }
    }
    let tail: f32 = a[body..]
        .iter()
        .zip(&b[body..])
        .map(|(x, &y)| x * widen(&y.to_le_bytes()))
        .sum();
    let mut lanes = [0f32; 16];
    for (k, acc) in acc.iter().enumerate() {
        vst1q_f32(lanes.as_mut_ptr().add(4 * k), *acc);
    }
    lanes.iter().sum::<f32>() + tail
}

/// NEON `dot_f32_f16`: bit for bit the scalar kernel.
pub(super) fn dot_f32_f16(a: &[f32], b: &[u16]) -> f32 {
    // SAFETY: only the Neon float table holds this function, handed out only when the CPU has NEON.
    unsafe { dot_f32_f16_imp(a, b) }
}

/// # Safety
/// The CPU must have NEON.
#[target_feature(enable = "neon")]
unsafe fn axpy_f16_imp(y: &mut [f32], alpha: f32, x: &[u16]) {
    assert_eq!(y.len(), x.len(), "axpy_f16: lengths differ");
    let body = y.len() / 8 * 8;
    let (yp, xp) = (y.as_mut_ptr(), x.as_ptr() as *const u8);
    for i in (0..body).step_by(8) {
        let h = load_f16(xp.add(2 * i));
        let y0 = vld1q_f32(yp.add(i));
        let y1 = vld1q_f32(yp.add(i + 4));
        vst1q_f32(yp.add(i), vaddq_f32(y0, vmulq_n_f32(widen_lo(h), alpha)));
        vst1q_f32(
            yp.add(i + 4),
            vaddq_f32(y1, vmulq_n_f32(widen_hi(h), alpha)),
        );
    }
    for (y, &x) in y[body..].iter_mut().zip(&x[body..]) {
        *y += alpha * widen(&x.to_le_bytes());
    }
}

/// NEON `axpy_f16`: bit for bit the scalar kernel.
pub(super) fn axpy_f16(y: &mut [f32], alpha: f32, x: &[u16]) {
    // SAFETY: only the Neon float table holds this function, handed out only when the CPU has NEON.
    unsafe { axpy_f16_imp(y, alpha, x) }
}
