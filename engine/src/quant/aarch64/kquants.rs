//! The k-quant types (Q2_K..Q6_K) against Q8_K: one driver for `vec_dot` and `vec_dot_multi`,
//! each type only saying how to unpack a super-block into sixteen 16-element groups of signed
//! bytes with their integer scales (and mins) and how to scale the block's integer sums.
//!
//! Unlike the 32-element types these kernels do not reproduce the scalar reference's eight f32
//! lanes (which follow ggml's generic C code): as ggml's own NEON kernels, they form one exact
//! integer sum per super-block and scale it once, so results agree with the reference to float
//! rounding, and bit for bit wherever every partial sum is exactly representable.
//! `vec_dot_multi` returns `vec_dot`'s bits per row.

use super::fp::{f32_at, load_i8};
use super::idot::I8Dot;
use crate::ggml_type::QK_K;
use core::arch::aarch64::*;

/// Bytes of a Q8_K block: `d: f32, qs: [i8; 256], bsums: [i16; 16]`.
const Q8K_BYTES: usize = 292;

/// A super-block unpacked: group g (elements 16g..16g + 16) is `q[g]` with scale `scales[g]` and
/// min `mins[g]` (groups 0..8 in `mins.0`, 8..16 in `mins.1`; zero for types without mins).
pub(super) struct KBlock {
    pub q: [int8x16_t; 16],
    pub scales: [i32; 16],
    pub mins: (int16x8_t, int16x8_t),
    pub d: f32,
    pub dmin: f32,
}

/// What a k-quant type contributes to the shared driver.
pub(super) trait KQuant {
    /// Bytes per super-block.
    const BYTES: usize;
    /// Scales cover 32 elements (groups 2k and 2k + 1 share one), so pairs of groups are summed
    /// before scaling.
    const PAIRED: bool;
    /// The type has per-group mins, met by the Q8_K group sums.
    const HAS_MIN: bool;
    /// The super-block at `x`, unpacked.
    ///
    /// # Safety
    /// `x` points at `BYTES` readable bytes.
    unsafe fn unpack(x: *const u8) -> KBlock;
    /// The block's term of the row sum from Σ scale·q·q8 (`isum`), Σ min·bsum (`msum`) and the
    /// Q8_K scale.
    fn term(b: &KBlock, isum: i32, msum: i32, dy: f32) -> f32;
}

/// Number of super-blocks of an `n`-element dot product with weight buffer `w`.
fn super_blocks<T: KQuant>(n: usize, w: &[u8]) -> usize {
    assert_eq!(n % QK_K, 0, "vec_dot: partial block");
    let nb = n / QK_K;
    assert!(w.len() >= nb * T::BYTES, "vec_dot: short buffer");
    nb
}

/// The term of one unpacked weight super-block with the Q8_K block at `y`.
#[inline(always)]
unsafe fn block_term<T: KQuant, D: I8Dot>(b: &KBlock, y: *const u8) -> f32 {
    let q8 = y.add(4);
    let zero = vdupq_n_s32(0);
    let mut acc = zero;
    if T::PAIRED {
        for g in 0..8 {
            let p = D::dot(zero, b.q[2 * g], load_i8(q8.add(32 * g)));
            let p = D::dot(p, b.q[2 * g + 1], load_i8(q8.add(32 * g + 16)));
            acc = vmlaq_n_s32(acc, p, b.scales[2 * g]);
        }
    } else {
        for g in 0..16 {
            let p = D::dot(zero, b.q[g], load_i8(q8.add(16 * g)));
            acc = vmlaq_n_s32(acc, p, b.scales[g]);
        }
    }
    let msum = if T::HAS_MIN {
        let bs = q8.add(QK_K);
        let b0 = vreinterpretq_s16_u8(vld1q_u8(bs));
        let b1 = vreinterpretq_s16_u8(vld1q_u8(bs.add(16)));
        // |bsum| ≤ 16 · 128 and mins < 64: every product and the sum fit an i32.
        let (m0, m1) = b.mins;
        let p = vmull_s16(vget_low_s16(b0), vget_low_s16(m0));
        let p = vmlal_high_s16(p, b0, m0);
        let p = vmlal_s16(p, vget_low_s16(b1), vget_low_s16(m1));
        vaddvq_s32(vmlal_high_s16(p, b1, m1))
    } else {
        0
    };
    T::term(b, vaddvq_s32(acc), msum, f32_at(y))
}

/// `vec_dot` for k-quant `T` on tier `D`.
///
/// # Safety
/// The CPU must have `D`'s features (the caller is a `#[target_feature]` function of that tier).
#[inline(always)]
pub(super) unsafe fn vec_dot<T: KQuant, D: I8Dot>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = super_blocks::<T>(n, w);
    assert!(a.len() >= nb * Q8K_BYTES, "vec_dot: short buffer");
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut sumf = 0f32;
    for i in 0..nb {
        let b = T::unpack(wp.add(i * T::BYTES));
        sumf += block_term::<T, D>(&b, ap.add(i * Q8K_BYTES));
    }
    sumf
}

/// Rows handled per pass of [`vec_dot_multi`].
const ROWS: usize = 8;

/// `vec_dot_multi`: each super-block is unpacked once for up to [`ROWS`] activation rows, each row
/// keeping its own running sum in `vec_dot`'s order.
///
/// # Safety
/// As [`vec_dot`].
#[inline(always)]
pub(super) unsafe fn vec_dot_multi<T: KQuant, D: I8Dot>(
    n: usize,
    w: &[u8],
    a: &[u8],
    a_stride: usize,
    out: &mut [f32],
) {
    if out.is_empty() {
        return;
    }
    let nb = super_blocks::<T>(n, w);
    assert!(
        a.len() >= (out.len() - 1) * a_stride + nb * Q8K_BYTES,
        "vec_dot_multi: short activations"
    );
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    for (c, out) in out.chunks_mut(ROWS).enumerate() {
        let rows = ap.add(c * ROWS * a_stride);
        let mut sums = [0f32; ROWS];
        for i in 0..nb {
            let b = T::unpack(wp.add(i * T::BYTES));
            for (r, s) in sums[..out.len()].iter_mut().enumerate() {
                *s += block_term::<T, D>(&b, rows.add(r * a_stride + i * Q8K_BYTES));
            }
        }
        out.copy_from_slice(&sums[..out.len()]);
    }
}

/// The 6-bit scales and mins of Q4_K / Q5_K as per-16-group scales and min vectors.
#[inline(always)]
pub(super) unsafe fn scales_mins_k4(packed: *const u8) -> ([i32; 16], (int16x8_t, int16x8_t)) {
    let packed: &[u8; 12] = &*(packed as *const [u8; 12]);
    let mut scales = [0i32; 16];
    let mut mins = [0i16; 16];
    for j in 0..8 {
        let (s, m) = crate::quant::kquants::scale_min_k4(j, packed);
        scales[2 * j] = s as i32;
        scales[2 * j + 1] = s as i32;
        mins[2 * j] = m as i16;
        mins[2 * j + 1] = m as i16;
    }
    let mp = mins.as_ptr() as *const u8;
    (
        scales,
        (
            vreinterpretq_s16_u8(vld1q_u8(mp)),
            vreinterpretq_s16_u8(vld1q_u8(mp.add(16))),
        ),
    )
}
