//! AVX2 Q8_0 axpy: the sparse FFN adding active neurons' columns of `down` to its output.
//!
//! Each block's scale `s = d·alpha` is formed in scalar f32 as the reference does, the quants are
//! widened to f32 (exact) eight at a time, and `y + s·q` uses a separate multiply and add (no FMA),
//! so the result is the scalar kernel's, bit for bit.
//!
//! FMA was measured and not taken: on a Zen 4 core it left the one-row kernel, the one the sparse
//! FFN calls, at the same speed (the widening `vpmovsxbd` + `vcvtdq2ps` bound the loop, not the
//! arithmetic), and sped up only the four-row kernel, by up to a fifth; bit-identical output on
//! every tier is worth more (sparse decode then gives the same tokens on any machine).

use super::f16_at;
use crate::quant::q8_0::{axpy_blocks, BYTES, QK};
use std::arch::x86_64::*;

/// The eight signed quants at `p` (any alignment) as f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q8x8(p: *const u8) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
}

/// `y[..32·nb] += alpha · dequant(row)`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn axpy_impl(y: *mut f32, alpha: f32, row: *const u8, nb: usize) {
    for b in 0..nb {
        let (p, yb) = (row.add(b * BYTES), y.add(b * QK));
        let s = _mm256_set1_ps(f16_at(p) * alpha);
        for k in 0..4 {
            let q = q8x8(p.add(2 + 8 * k));
            let acc = _mm256_add_ps(_mm256_loadu_ps(yb.add(8 * k)), _mm256_mul_ps(s, q));
            _mm256_storeu_ps(yb.add(8 * k), acc);
        }
    }
}

/// Four rows in order, `y` loaded and stored once per eight elements.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn axpy_x4_impl(y: *mut f32, alpha: [f32; 4], rows: [*const u8; 4], nb: usize) {
    for b in 0..nb {
        let yb = y.add(b * QK);
        let mut p = [rows[0]; 4];
        let mut s = [_mm256_setzero_ps(); 4];
        for i in 0..4 {
            p[i] = rows[i].add(b * BYTES);
            s[i] = _mm256_set1_ps(f16_at(p[i]) * alpha[i]);
        }
        for k in 0..4 {
            let mut acc = _mm256_loadu_ps(yb.add(8 * k));
            for i in 0..4 {
                let q = q8x8(p[i].add(2 + 8 * k));
                acc = _mm256_add_ps(acc, _mm256_mul_ps(s[i], q));
            }
            _mm256_storeu_ps(yb.add(8 * k), acc);
        }
    }
}

/// Safe wrapper of [`axpy_impl`].
pub(crate) fn axpy_q8_0(y: &mut [f32], alpha: f32, row: &[u8]) {
    let nb = axpy_blocks(y, row);
    // SAFETY: only reachable through tables for tiers with AVX2/FMA/F16C; `axpy_blocks` checked
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
