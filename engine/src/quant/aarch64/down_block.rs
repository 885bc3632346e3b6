//! NEON down-block kernels ([`crate::quant::down_block`]): bit for bit the scalar kernels.
//!
//! Rows are tiled by one nibble group (64 rows, sixteen accumulators) so that the accumulators stay
//! in registers and `out` is read and written once per tile, with the columns in order in the
//! inner loop. Nibbles are split with one mask and one shift per sixteen bytes, quants widened
//! (`uxtl` / `sxtl`) and converted (`ucvtf` / `scvtf`, exact), and `acc + a·q` is a separate
//! multiply and add (no `fmla`), rounding as the scalar kernels.

use super::fp::{load_f16, load_i8, widen_hi, widen_lo};
use crate::quant::down_block::{check, GROUP};
use core::arch::aarch64::*;

/// Sixteen unsigned bytes as four vectors of f32, in order.
#[inline(always)]
unsafe fn u8x16_f32(q: uint8x16_t) -> [float32x4_t; 4] {
    let (lo, hi) = (vmovl_u8(vget_low_u8(q)), vmovl_high_u8(q));
    [
        vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))),
        vcvtq_f32_u32(vmovl_high_u16(lo)),
        vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))),
        vcvtq_f32_u32(vmovl_high_u16(hi)),
    ]
}

/// Sixteen signed bytes as four vectors of f32, in order.
#[inline(always)]
unsafe fn i8x16_f32(q: int8x16_t) -> [float32x4_t; 4] {
    let (lo, hi) = (vmovl_s8(vget_low_s8(q)), vmovl_high_s8(q));
    [
        vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))),
        vcvtq_f32_s32(vmovl_high_s16(lo)),
        vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))),
        vcvtq_f32_s32(vmovl_high_s16(hi)),
    ]
}

/// `acc[k] + a·q[k]` for the four vectors, multiply then add.
#[inline(always)]
unsafe fn madd4(acc: &mut [float32x4_t], a: f32, q: [float32x4_t; 4]) {
    for (acc, q) in acc.iter_mut().zip(q) {
        *acc = vaddq_f32(*acc, vmulq_n_f32(q, a));
    }
}

/// The sixteen f16 at `p` as four vectors of f32.
#[inline(always)]
unsafe fn half16(p: *const u16) -> [float32x4_t; 4] {
    let (x, y) = (load_f16(p as *const u8), load_f16(p.add(8) as *const u8));
    [widen_lo(x), widen_hi(x), widen_lo(y), widen_hi(y)]
}

/// `H`·32 nibble rows from row `r0` (a group start): a full group (`H` = 2) or the last, 32-row
/// one (`H` = 1). `out[r] += d[r]·acc + m[r]·s`.
///
/// # Safety
/// The CPU must have NEON; `out`, `d` and `m` must hold rows `r0..r0 + 32·H` and every column
/// bytes `r0/2..r0/2 + 16·H`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn nib_group<const H: usize, const V: usize>(
    out: *mut f32,
    d: *const u16,
    m: *const u16,
    cols: &[&[u8]],
    a: &[f32],
    s: f32,
    r0: usize,
) {
    let mask = vdupq_n_u8(0x0f);
    // The group is 16·H bytes: byte j holds row j (low nibble) and row 16·H + j (high).
    let mut acc = [vdupq_n_f32(0.0); V];
    for (c, &aj) in cols.iter().zip(a) {
        let p = c.as_ptr().add(r0 / 2);
        for h in 0..H {
            let q = vld1q_u8(p.add(16 * h));
            madd4(&mut acc[4 * h..], aj, u8x16_f32(vandq_u8(q, mask)));
            madd4(&mut acc[4 * (H + h)..], aj, u8x16_f32(vshrq_n_u8::<4>(q)));
        }
    }
    for (k, acc) in acc.chunks_exact(4).enumerate() {
        let r = r0 + 16 * k;
        let (dv, mv) = (half16(d.add(r)), half16(m.add(r)));
        for i in 0..4 {
            let t = vaddq_f32(vmulq_f32(dv[i], acc[i]), vmulq_n_f32(mv[i], s));
            let o = out.add(r + 4 * i);
            vst1q_f32(o, vaddq_f32(vld1q_f32(o), t));
        }
    }
}

/// The nibble kernel over all `n` rows.
///
/// # Safety
/// The CPU must have NEON; `n` a multiple of 32, `out` n rows, `scales` 2n halves, every column
/// n/2 bytes.
#[target_feature(enable = "neon")]
unsafe fn nib4_imp(out: *mut f32, n: usize, scales: *const u16, cols: &[&[u8]], a: &[f32], s: f32) {
    let (d, m) = (scales, scales.add(n));
    let mut r = 0;
    while r + GROUP <= n {
        nib_group::<2, 16>(out, d, m, cols, a, s, r);
        r += GROUP;
    }
    if r < n {
        nib_group::<1, 8>(out, d, m, cols, a, s, r);
    }
}

/// `V`·4 rows of byte columns from row `r0`: `out[r] += d[r]·acc`.
///
/// # Safety
/// The CPU must have NEON; `out`, `d` and every column must hold rows `r0..r0 + 4·V`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn i8_rows<const V: usize>(
    out: *mut f32,
    d: *const u16,
    cols: &[&[u8]],
    a: &[f32],
    r0: usize,
) {
    let mut acc = [vdupq_n_f32(0.0); V];
    for (c, &aj) in cols.iter().zip(a) {
        let p = c.as_ptr().add(r0);
        for (k, acc) in acc.chunks_exact_mut(4).enumerate() {
            madd4(acc, aj, i8x16_f32(load_i8(p.add(16 * k))));
        }
    }
    for (k, acc) in acc.chunks_exact(4).enumerate() {
        let r = r0 + 16 * k;
        let dv = half16(d.add(r));
        for i in 0..4 {
            let o = out.add(r + 4 * i);
            vst1q_f32(o, vaddq_f32(vld1q_f32(o), vmulq_f32(dv[i], acc[i])));
        }
    }
}

/// The byte kernel over all `n` rows.
///
/// # Safety
/// The CPU must have NEON; `n` a multiple of 32, `out` and `d` n rows, every column n bytes.
#[target_feature(enable = "neon")]
unsafe fn i8_imp(out: *mut f32, n: usize, d: *const u16, cols: &[&[u8]], a: &[f32]) {
    let mut r = 0;
    while r + 64 <= n {
        i8_rows::<16>(out, d, cols, a, r);
        r += 64;
    }
    if r < n {
        i8_rows::<8>(out, d, cols, a, r);
    }
}

/// NEON `down_nib4`: bit for bit the scalar kernel.
pub(super) fn down_nib4(out: &mut [f32], scales: &[u16], cols: &[&[u8]], a: &[f32], s: f32) {
    let n = out.len();
    check(out, scales, cols, a, 2, n / 2);
    // SAFETY: only the Neon float table holds this function, handed out only when the CPU has
    // NEON; `check` made `n` a multiple of 32, `scales` 2n halves and every column n/2 bytes.
    unsafe { nib4_imp(out.as_mut_ptr(), n, scales.as_ptr(), cols, a, s) }
}

/// NEON `down_i8`: bit for bit the scalar kernel.
pub(super) fn down_i8(out: &mut [f32], scales: &[u16], cols: &[&[u8]], a: &[f32]) {
    let n = out.len();
    check(out, scales, cols, a, 1, n);
    // SAFETY: as `down_nib4`, with `scales` n halves and every column n bytes.
    unsafe { i8_imp(out.as_mut_ptr(), n, scales.as_ptr(), cols, a) }
}
