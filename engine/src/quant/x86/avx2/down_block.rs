//! AVX2 down-block kernels ([`crate::quant::down_block`]): bit for bit the scalar kernels.
//!
//! Rows are tiled by one nibble group (64 rows, eight ymm accumulators) so that the accumulators
//! stay in registers and `out` is read and written once per tile, with the columns in order in
//! the inner loop. Quants are widened to i32 straight from memory (`vpmovzxbd` / `vpmovsxbd`),
//! nibbles split on the i32 lanes with one mask and one shift, converted (exact) and multiplied,
//! then added: a separate multiply and add (no FMA), rounding as the scalar kernels.

use crate::quant::down_block::{check, GROUP};
use std::arch::x86_64::*;

/// The eight f16 at `p` as f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn half8(p: *const u16) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
}

/// The eight bytes at `p` zero-extended to i32 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn bytes8(p: *const u8) -> __m256i {
    _mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i))
}

/// `acc + a·float(q)`, multiply then add.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn madd(acc: __m256, a: __m256, q: __m256i) -> __m256 {
    _mm256_add_ps(acc, _mm256_mul_ps(a, _mm256_cvtepi32_ps(q)))
}

/// `H`·16 nibble rows from row `r0` (a group start): a full group (`H` = 2) or the last, 32-row
/// one (`H` = 1). `out[r] += d[r]·acc + m[r]·s`.
#[target_feature(enable = "avx2,fma,f16c")]
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
    let mask = _mm256_set1_epi32(0x0f);
    // The group is 16·H bytes: byte j holds row j (low nibble) and row 16·H + j (high).
    let mut acc = [_mm256_setzero_ps(); V];
    for (c, &aj) in cols.iter().zip(a) {
        let (p, aj) = (c.as_ptr().add(r0 / 2), _mm256_set1_ps(aj));
        for k in 0..2 * H {
            let x = bytes8(p.add(8 * k));
            acc[k] = madd(acc[k], aj, _mm256_and_si256(x, mask));
            acc[2 * H + k] = madd(acc[2 * H + k], aj, _mm256_srli_epi32(x, 4));
        }
    }
    let s = _mm256_set1_ps(s);
    for (k, acc) in acc.into_iter().enumerate() {
        let r = r0 + 8 * k;
        let t = _mm256_add_ps(
            _mm256_mul_ps(half8(d.add(r)), acc),
            _mm256_mul_ps(half8(m.add(r)), s),
        );
        let o = out.add(r);
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), t));
    }
}

/// The nibble kernel over all `n` rows.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nib4_impl(
    out: *mut f32,
    n: usize,
    scales: *const u16,
    cols: &[&[u8]],
    a: &[f32],
    s: f32,
) {
    let (d, m) = (scales, scales.add(n));
    let mut r = 0;
    while r + GROUP <= n {
        nib_group::<2, 8>(out, d, m, cols, a, s, r);
        r += GROUP;
    }
    if r < n {
        nib_group::<1, 4>(out, d, m, cols, a, s, r);
    }
}

/// `V`·8 rows of byte columns from row `r0`: `out[r] += d[r]·acc`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn i8_rows<const V: usize>(
    out: *mut f32,
    d: *const u16,
    cols: &[&[u8]],
    a: &[f32],
    r0: usize,
) {
    let mut acc = [_mm256_setzero_ps(); V];
    for (c, &aj) in cols.iter().zip(a) {
        let (p, aj) = (c.as_ptr().add(r0), _mm256_set1_ps(aj));
        for (k, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.add(8 * k) as *const __m128i));
            *acc = madd(*acc, aj, x);
        }
    }
    for (k, acc) in acc.into_iter().enumerate() {
        let r = r0 + 8 * k;
        let o = out.add(r);
        let t = _mm256_mul_ps(half8(d.add(r)), acc);
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), t));
    }
}

/// The byte kernel over all `n` rows.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i8_impl(out: *mut f32, n: usize, d: *const u16, cols: &[&[u8]], a: &[f32]) {
    let mut r = 0;
    while r + 64 <= n {
        i8_rows::<8>(out, d, cols, a, r);
        r += 64;
    }
    if r < n {
        i8_rows::<4>(out, d, cols, a, r);
    }
}

/// AVX2 `down_nib4`.
pub(crate) fn down_nib4(out: &mut [f32], scales: &[u16], cols: &[&[u8]], a: &[f32], s: f32) {
    let n = out.len();
    check(out, scales, cols, a, 2, n / 2);
    // SAFETY: only reachable through tables for tiers with AVX2/FMA/F16C; `check` made `n` a
    // multiple of 32, `scales` 2n halves and every column n/2 bytes, which is what the loops read.
    unsafe { nib4_impl(out.as_mut_ptr(), n, scales.as_ptr(), cols, a, s) }
}

/// AVX2 `down_i8`.
pub(crate) fn down_i8(out: &mut [f32], scales: &[u16], cols: &[&[u8]], a: &[f32]) {
    let n = out.len();
    check(out, scales, cols, a, 1, n);
    // SAFETY: as `down_nib4`, with `scales` n halves and every column n bytes.
    unsafe { i8_impl(out.as_mut_ptr(), n, scales.as_ptr(), cols, a) }
}
