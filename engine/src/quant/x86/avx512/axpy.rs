//! AVX-512 Q8_0 axpy: as the AVX2 kernel ([`crate::quant::x86::avx2::axpy`], which says why there
//! is no FMA) with a block's 32 elements in two 512-bit registers; bit for bit the scalar kernel.

use crate::quant::q8_0::{axpy_blocks, BYTES, QK};
use crate::quant::x86::avx2::f16_at;
use std::arch::x86_64::*;

macro_rules! avx512 {
    ($($item:item)*) => {$(
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        $item
    )*};
}

avx512! {
    /// The sixteen signed quants at `p` (any alignment) as f32.
    #[inline]
    unsafe fn q8x16(p: *const u8) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i)))
    }

    /// `y + s·q` with a separate multiply and add, rounding as the scalar kernel.
    #[inline]
    unsafe fn madd(acc: __m512, s: __m512, q: __m512) -> __m512 {
        _mm512_add_ps(acc, _mm512_mul_ps(s, q))
    }

    /// `y[..32·nb] += alpha · dequant(row)`.
    unsafe fn axpy_impl(y: *mut f32, alpha: f32, row: *const u8, nb: usize) {
        for b in 0..nb {
            let (p, yb) = (row.add(b * BYTES), y.add(b * QK));
            let s = _mm512_set1_ps(f16_at(p) * alpha);
            for k in 0..2 {
                let acc = madd(_mm512_loadu_ps(yb.add(16 * k)), s, q8x16(p.add(2 + 16 * k)));
                _mm512_storeu_ps(yb.add(16 * k), acc);
            }
        }
    }

    /// Four rows in order, `y` loaded and stored once per sixteen elements.
    unsafe fn axpy_x4_impl(y: *mut f32, alpha: [f32; 4], rows: [*const u8; 4], nb: usize) {
        for b in 0..nb {
            let yb = y.add(b * QK);
            let mut p = [rows[0]; 4];
            let mut s = [_mm512_setzero_ps(); 4];
            for i in 0..4 {
                p[i] = rows[i].add(b * BYTES);
                s[i] = _mm512_set1_ps(f16_at(p[i]) * alpha[i]);
            }
            for k in 0..2 {
                let mut acc = _mm512_loadu_ps(yb.add(16 * k));
                for i in 0..4 {
                    acc = madd(acc, s[i], q8x16(p[i].add(2 + 16 * k)));
                }
                _mm512_storeu_ps(yb.add(16 * k), acc);
            }
        }
    }
}

/// Safe wrapper of [`axpy_impl`].
pub(crate) fn axpy_q8_0(y: &mut [f32], alpha: f32, row: &[u8]) {
    let nb = axpy_blocks(y, row);
    // SAFETY: only reachable through the AVX-512 table (features detected); `axpy_blocks` checked
    // that `y` holds 32·nb elements and `row` nb blocks.
    unsafe { axpy_impl(y.as_mut_ptr(), alpha, row.as_ptr(), nb) }
}

/// Safe wrapper of [`axpy_x4_impl`].
pub(crate) fn axpy_q8_0_x4(y: &mut [f32], alpha: [f32; 4], rows: [&[u8]; 4]) {
    let nb = axpy_blocks(y, rows[0]);
    for r in &rows[1..] {
        axpy_blocks(y, r);
    }
    // SAFETY: as `axpy_q8_0`, for each of the four rows.
    unsafe { axpy_x4_impl(y.as_mut_ptr(), alpha, rows.map(|r| r.as_ptr()), nb) }
}
