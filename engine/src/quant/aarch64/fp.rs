//! Loads and half-precision conversions shared by the kernels.
//!
//! Weights come straight from an mmap at any byte offset, so every vector load goes through
//! `vld1q_u8` (byte alignment) and is reinterpreted, never through a wider element pointer.
//! f16 → f32 uses the ARMv8.0 `fcvt`/`fcvtl` instructions (exact, as every half is an f32) through
//! inline assembly, since the `float16x4_t` intrinsics are not stable.

use core::arch::aarch64::*;
use core::arch::asm;

/// 16 signed bytes at `p` (any alignment).
#[inline(always)]
pub(super) unsafe fn load_i8(p: *const u8) -> int8x16_t {
    vreinterpretq_s8_u8(vld1q_u8(p))
}

/// Four little-endian f32 at `p` (any alignment).
#[inline(always)]
pub(super) unsafe fn load_f32(p: *const u8) -> float32x4_t {
    vreinterpretq_f32_u8(vld1q_u8(p))
}

/// Eight little-endian half bit patterns at `p` (any alignment).
#[inline(always)]
pub(super) unsafe fn load_f16(p: *const u8) -> uint16x8_t {
    vreinterpretq_u16_u8(vld1q_u8(p))
}

/// The little-endian f16 at `p` as f32 (scalar `fcvt`).
#[inline(always)]
pub(super) unsafe fn half_at(p: *const u8) -> f32 {
    let h = u16::from_le_bytes([*p, *p.add(1)]);
    let out: f32;
    asm!(
        "fcvt {o:s}, {i:h}",
        i = in(vreg) h,
        o = lateout(vreg) out,
        options(pure, nomem, nostack, preserves_flags)
    );
    out
}

/// The little-endian f32 at `p` (any alignment).
#[inline(always)]
pub(super) unsafe fn f32_at(p: *const u8) -> f32 {
    f32::from_le_bytes(*(p as *const [u8; 4]))
}

/// Halves 0..4 of `h` widened to f32 (`fcvtl`, exact; NaNs are quieted as the scalar widening does).
#[inline(always)]
pub(super) unsafe fn widen_lo(h: uint16x8_t) -> float32x4_t {
    let out: float32x4_t;
    asm!(
        "fcvtl {o:v}.4s, {i:v}.4h",
        i = in(vreg) h,
        o = lateout(vreg) out,
        options(pure, nomem, nostack, preserves_flags)
    );
    out
}

/// Halves 4..8 of `h` widened to f32 (`fcvtl2`).
#[inline(always)]
pub(super) unsafe fn widen_hi(h: uint16x8_t) -> float32x4_t {
    let out: float32x4_t;
    asm!(
        "fcvtl2 {o:v}.4s, {i:v}.8h",
        i = in(vreg) h,
        o = lateout(vreg) out,
        options(pure, nomem, nostack, preserves_flags)
    );
    out
}
