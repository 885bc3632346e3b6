//! The `sdot` instruction (ARMv8.2 dot-product extension) through inline assembly.
//!
//! Stable Rust has no `vdotq_s32` yet, so the instruction is written out. It only assembles inside a
//! function compiled with the `dotprod` feature, which is why this helper carries the attribute
//! itself: wherever LLVM inlines it, the caller has the feature too (a `dotprod` kernel).

use core::arch::aarch64::int32x4_t;
use core::arch::aarch64::int8x16_t;
use core::arch::asm;

/// `acc[i] + Σ_{k<4} a[4i+k]·b[4i+k]` for the four i32 lanes, exactly.
///
/// # Safety
/// The CPU must have the dot-product extension.
#[inline]
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    asm!(
        "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
        acc = inout(vreg) acc,
        a = in(vreg) a,
        b = in(vreg) b,
        options(pure, nomem, nostack, preserves_flags)
    );
    acc
}
