//! AVX-512 down-block kernels ([`crate::quant::down_block`]): bit for bit the scalar kernels.
//!
//! Rows are tiled so that the accumulators stay in registers and `out` is read and written once
//! per tile: 128 rows (two nibble groups, eight zmm) with the columns in order in the inner loop.
//!
//! Nibble columns need no conversion to float: per column, a 16-entry table `a_j·k` (k = 0..15,
//! each product rounded to f32 exactly as the scalar `a_j·q`) is looked up with `vpermps`, which
//! reads only the low four bits of each index, so a byte widened to i32 selects its low nibble
//! as is and its high nibble after one shift. Byte columns are widened and converted
//! (`vpmovsxbd`, `vcvtdq2ps`, exact) and multiplied. Sums are a separate multiply and add (no FMA).

use crate::quant::down_block::{check, GROUP};
use std::arch::x86_64::*;

macro_rules! avx512 {
    ($($item:item)*) => {$(
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        $item
    )*};
}

avx512! {
    /// The sixteen f16 at `p` as f32.
    #[inline]
    unsafe fn half16(p: *const u16) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
    }

    /// The sixteen bytes at `p` zero-extended to i32 lanes.
    #[inline]
    unsafe fn bytes16(p: *const u8) -> __m512i {
        _mm512_cvtepu8_epi32(_mm_loadu_si128(p as *const __m128i))
    }

    /// `table[k] = a·k` for k = 0..15: the products of the scalar kernel.
    #[inline]
    unsafe fn products(a: f32) -> __m512 {
        let k = _mm512_setr_ps(
            0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
        );
        _mm512_mul_ps(_mm512_set1_ps(a), k)
    }

    /// `out[16k..16k+16] += d·acc[k] + m·s` for the `V` accumulators of rows from `out`.
    #[inline]
    unsafe fn finish_nib<const V: usize>(
        out: *mut f32,
        d: *const u16,
        m: *const u16,
        s: __m512,
        acc: [__m512; V],
    ) {
        for (k, acc) in acc.into_iter().enumerate() {
            let t = _mm512_add_ps(
                _mm512_mul_ps(half16(d.add(16 * k)), acc),
                _mm512_mul_ps(half16(m.add(16 * k)), s),
            );
            let o = out.add(16 * k);
            _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), t));
        }
    }

    /// `G` full nibble groups (64·G rows) from row `r0`, a multiple of 64.
    #[inline]
    unsafe fn nib_groups<const G: usize, const V: usize>(
        out: *mut f32,
        d: *const u16,
        m: *const u16,
        cols: &[&[u8]],
        a: &[f32],
        s: f32,
        r0: usize,
    ) {
        let mut acc = [_mm512_setzero_ps(); V];
        for (c, &aj) in cols.iter().zip(a) {
            let (p, t) = (c.as_ptr().add(r0 / 2), products(aj));
            for g in 0..G {
                // Bytes 16h.. of the group: rows 16h.. (low nibbles) and 32 + 16h.. (high).
                for h in 0..2 {
                    let x = bytes16(p.add(32 * g + 16 * h));
                    let (lo, hi) = (4 * g + h, 4 * g + 2 + h);
                    acc[lo] = _mm512_add_ps(acc[lo], _mm512_permutexvar_ps(x, t));
                    let y = _mm512_permutexvar_ps(_mm512_srli_epi32(x, 4), t);
                    acc[hi] = _mm512_add_ps(acc[hi], y);
                }
            }
        }
        let s = _mm512_set1_ps(s);
        finish_nib(out.add(r0), d.add(r0), m.add(r0), s, acc);
    }

    /// The last, 32-row group from row `r0`.
    #[inline]
    unsafe fn nib_half(
        out: *mut f32,
        d: *const u16,
        m: *const u16,
        cols: &[&[u8]],
        a: &[f32],
        s: f32,
        r0: usize,
    ) {
        let mut acc = [_mm512_setzero_ps(); 2];
        for (c, &aj) in cols.iter().zip(a) {
            let (x, t) = (bytes16(c.as_ptr().add(r0 / 2)), products(aj));
            acc[0] = _mm512_add_ps(acc[0], _mm512_permutexvar_ps(x, t));
            let y = _mm512_permutexvar_ps(_mm512_srli_epi32(x, 4), t);
            acc[1] = _mm512_add_ps(acc[1], y);
        }
        let s = _mm512_set1_ps(s);
        finish_nib(out.add(r0), d.add(r0), m.add(r0), s, acc);
    }

    /// The nibble kernel over all `n` rows.
    unsafe fn nib4_impl(out: *mut f32, n: usize, scales: *const u16, cols: &[&[u8]], a: &[f32], s: f32) {
        let (d, m) = (scales, scales.add(n));
        let mut r = 0;
        while r + 2 * GROUP <= n {
            nib_groups::<2, 8>(out, d, m, cols, a, s, r);
            r += 2 * GROUP;
        }
        if r + GROUP <= n {
            nib_groups::<1, 4>(out, d, m, cols, a, s, r);
            r += GROUP;
        }
        if r < n {
            nib_half(out, d, m, cols, a, s, r);
        }
    }

    /// `V`·16 rows of byte columns from row `r0`.
    #[inline]
    unsafe fn i8_rows<const V: usize>(
        out: *mut f32,
        d: *const u16,
        cols: &[&[u8]],
        a: &[f32],
        r0: usize,
    ) {
        let mut acc = [_mm512_setzero_ps(); V];
        for (c, &aj) in cols.iter().zip(a) {
            let (p, aj) = (c.as_ptr().add(r0), _mm512_set1_ps(aj));
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(16 * k) as *const __m128i));
                *acc = _mm512_add_ps(*acc, _mm512_mul_ps(aj, _mm512_cvtepi32_ps(x)));
            }
        }
        for (k, acc) in acc.into_iter().enumerate() {
            let o = out.add(r0 + 16 * k);
            let t = _mm512_mul_ps(half16(d.add(r0 + 16 * k)), acc);
            _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), t));
        }
    }

    /// The byte kernel over all `n` rows.
    unsafe fn i8_impl(out: *mut f32, n: usize, d: *const u16, cols: &[&[u8]], a: &[f32]) {
        let mut r = 0;
        while r + 128 <= n {
            i8_rows::<8>(out, d, cols, a, r);
            r += 128;
        }
        while r < n {
            i8_rows::<2>(out, d, cols, a, r);
            r += 32;
        }
    }
}

/// AVX-512 `down_nib4`.
pub(crate) fn down_nib4(out: &mut [f32], scales: &[u16], cols: &[&[u8]], a: &[f32], s: f32) {
    let n = out.len();
    check(out, scales, cols, a, 2, n / 2);
    // SAFETY: only reachable through the AVX-512 table (features detected); `check` made `n` a
    // multiple of 32, `scales` 2n halves and every column n/2 bytes, which is what the loops read.
    unsafe { nib4_impl(out.as_mut_ptr(), n, scales.as_ptr(), cols, a, s) }
}

/// AVX-512 `down_i8`.
pub(crate) fn down_i8(out: &mut [f32], scales: &[u16], cols: &[&[u8]], a: &[f32]) {
    let n = out.len();
    check(out, scales, cols, a, 1, n);
    // SAFETY: as `down_nib4`, with `scales` n halves and every column n bytes.
    unsafe { i8_impl(out.as_mut_ptr(), n, scales.as_ptr(), cols, a) }
}
