//! F32: the weight-type dot product (f32 products summed in f64, as the reference) and the float
//! kernels' `dot_f32` (sixteen f32 lanes, bit for bit the reference's).

use super::fp::load_f32;
use core::arch::aarch64::*;

/// `vec_dot` of F32 weights with F32 activations: products rounded to f32 as the reference rounds
/// them, summed in four f64 lanes (the reference sums in f64 in element order, so the results
/// differ only in the f64 rounding of the sum).
///
/// # Safety
/// The CPU must have NEON.
#[target_feature(enable = "neon")]
unsafe fn vec_dot_imp(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let (w, a) = (&w[..4 * n], &a[..4 * n]);
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let (mut s0, mut s1) = (vdupq_n_f64(0.0), vdupq_n_f64(0.0));
    let body = n / 4 * 4;
    for i in (0..body).step_by(4) {
        let p = vmulq_f32(load_f32(wp.add(4 * i)), load_f32(ap.add(4 * i)));
        s0 = vaddq_f64(s0, vcvt_f64_f32(vget_low_f32(p)));
        s1 = vaddq_f64(s1, vcvt_high_f64_f32(p));
    }
    let mut sum = vaddvq_f64(vaddq_f64(s0, s1));
    for (x, y) in w[4 * body..]
        .chunks_exact(4)
        .zip(a[4 * body..].chunks_exact(4))
    {
        let x = f32::from_le_bytes(x.try_into().unwrap());
        let y = f32::from_le_bytes(y.try_into().unwrap());
        sum += (x * y) as f64;
    }
    sum as f32
}

/// NEON `vec_dot` for F32.
pub(super) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: only the Neon and Dotprod tables hold this function, and `kernels_for` hands those
    // out only when the CPU has NEON.
    unsafe { vec_dot_imp(n, w, a) }
}

/// Σ a·b in sixteen f32 lanes (four vectors) with separate multiply and add, reduced lane 0 to 15
/// and then the scalar tail, exactly as the scalar `dot`: the exact path gets the same bits on
/// every tier.
///
/// # Safety
/// The CPU must have NEON.
#[target_feature(enable = "neon")]
unsafe fn dot_imp(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: lengths differ");
    let body = a.len() / 16 * 16;
    let (ap, bp) = (a.as_ptr() as *const u8, b.as_ptr() as *const u8);
    let mut acc = [vdupq_n_f32(0.0); 4];
    for i in (0..body).step_by(16) {
        for (k, acc) in acc.iter_mut().enumerate() {
            let at = 4 * (i + 4 * k);
            *acc = vaddq_f32(*acc, vmulq_f32(load_f32(ap.add(at)), load_f32(bp.add(at))));
        }
    }
    let tail: f32 = a[body..].iter().zip(&b[body..]).map(|(x, y)| x * y).sum();
    let mut lanes = [0f32; 16];
    for (k, acc) in acc.iter().enumerate() {
        vst1q_f32(lanes.as_mut_ptr().add(4 * k), *acc);
    }
    lanes.iter().sum::<f32>() + tail
}

/// NEON `dot_f32`.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: only the Neon float table holds this function, handed out only when the CPU has NEON.
    unsafe { dot_imp(a, b) }
}
