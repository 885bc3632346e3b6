//! Sums of products of signed bytes, the inner operation of every integer kernel, per tier.
//!
//! Kernels are written once, generic over [`I8Dot`], and instantiated for plain NEON (widening
//! multiplies, as ggml does without `sdot`) and for the dot-product extension. Both variants are
//! exact: only the split of the sum over the four i32 lanes differs, so callers may only use the
//! lanes' total or scale all four lanes alike.

use super::sdot::sdot;
use core::arch::aarch64::*;

/// One tier's way to accumulate 16 byte products into four i32 lanes.
pub(super) trait I8Dot {
    /// `acc` plus the 16 products `a[i]·b[i]` spread over its four lanes (exactly; which product
    /// lands in which lane is the tier's business).
    ///
    /// # Safety
    /// The CPU must have the tier's features; callers are `#[target_feature]` kernels of that tier.
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

/// ARMv8.0 NEON: `smull` into i16 (every i8·i8 product fits, even -128·-128) and pairwise
/// widening adds into i32.
pub(super) struct Neon;

impl I8Dot for Neon {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let p1 = vmull_high_s8(a, b);
        vpadalq_s16(vpadalq_s16(acc, p0), p1)
    }
}

/// ARMv8.2 dot-product extension: one `sdot` per 16 products.
pub(super) struct Sdot;

impl I8Dot for Sdot {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        sdot(acc, a, b)
    }
}
