//! What the k-quant kernels share: the Q8_K activation block's fields and the buffer checks.
//!
//! Unlike the 32-element types these kernels do not reproduce the scalar reference's eight f32
//! lanes (which follow ggml's generic C code): as ggml's own NEON kernels, they form one exact
//! integer sum per super-block and scale it once, so results agree with the reference to float
//! rounding, and bit for bit wherever every partial sum is exactly representable.

use super::fp::f32_at;
use crate::ggml_type::QK_K;
use core::arch::aarch64::*;

/// Bytes of a Q8_K block: `d: f32, qs: [i8; 256], bsums: [i16; 16]`.
pub(super) const Q8K_BYTES: usize = 292;

/// The scale of the Q8_K block at `y`.
#[inline(always)]
pub(super) unsafe fn q8k_d(y: *const u8) -> f32 {
    f32_at(y)
}

/// The quants of the Q8_K block at `y`.
#[inline(always)]
pub(super) unsafe fn q8k_quants(y: *const u8) -> *const u8 {
    y.add(4)
}

/// The 16 group sums of the Q8_K block at `y`, groups 0..8 and 8..16.
#[inline(always)]
pub(super) unsafe fn q8k_bsums(y: *const u8) -> (int16x8_t, int16x8_t) {
    let p = y.add(4 + QK_K);
    (
        vreinterpretq_s16_u8(vld1q_u8(p)),
        vreinterpretq_s16_u8(vld1q_u8(p.add(16))),
    )
}

/// Number of super-blocks of an `n`-element dot product with `bytes`-byte weight blocks, after
/// checking both buffers hold them.
pub(super) fn super_blocks(n: usize, bytes: usize, w: &[u8], a: &[u8]) -> usize {
    assert_eq!(n % QK_K, 0, "vec_dot: partial block");
    let nb = n / QK_K;
    assert!(
        w.len() >= nb * bytes && a.len() >= nb * Q8K_BYTES,
        "vec_dot: short buffer"
    );
    nb
}

/// Σ mins[g] · (bsums[2g] + bsums[2g + 1]) for the eight 32-element groups of Q4_K / Q5_K.
#[inline(always)]
pub(super) unsafe fn min_sum_32(y: *const u8, mins: &[u8; 8]) -> i32 {
    let (b0, b1) = q8k_bsums(y);
    // Pair sums of 16-element group sums: |Σ| ≤ 32 · 128, fits an i16.
    let pairs = vpaddq_s16(b0, b1);
    let m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mins.as_ptr())));
    let p = vmull_s16(vget_low_s16(pairs), vget_low_s16(m));
    vaddvq_s32(vmlal_high_s16(p, pairs, m))
}
