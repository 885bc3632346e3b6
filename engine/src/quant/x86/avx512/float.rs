//! AVX-512 float kernels of attention and the exact path.

use std::arch::x86_64::*;

macro_rules! avx512 {
    ($($item:item)*) => {$(
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        $item
    )*};
}

avx512! {
    /// Sixteen elements at `p`, as f32 (`p` is f32 or f16 per `F16`).
    #[inline]
    unsafe fn load16<const F16: bool>(p: *const u8) -> __m512 {
        if F16 {
            _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
        } else {
            _mm512_loadu_ps(p as *const f32)
        }
    }

    /// The first `len` (< 16) elements at `p`, zeros after, without reading past them.
    #[inline]
    unsafe fn load_tail<const F16: bool>(p: *const u8, len: usize) -> __m512 {
        let k: __mmask16 = ((1u32 << len) - 1) as u16;
        if F16 {
            _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p as *const i16))
        } else {
            _mm512_maskz_loadu_ps(k, p as *const f32)
        }
    }

    /// Σ a·b with `b` f32 or f16: 64 lanes in four accumulators, a masked tail.
    unsafe fn dot_impl<const F16: bool>(a: *const f32, b: *const u8, n: usize) -> f32 {
        let es = if F16 { 2 } else { 4 };
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_loadu_ps(a.add(i + 16 * k));
                *acc = _mm512_fmadd_ps(x, load16::<F16>(b.add((i + 16 * k) * es)), *acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            let x = _mm512_loadu_ps(a.add(i));
            acc[0] = _mm512_fmadd_ps(x, load16::<F16>(b.add(i * es)), acc[0]);
            i += 16;
        }
        if i < n {
            let x = load_tail::<false>(a.add(i) as *const u8, n - i);
            acc[1] = _mm512_fmadd_ps(x, load_tail::<F16>(b.add(i * es), n - i), acc[1]);
        }
        let acc = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(acc)
    }

    /// y += alpha · widen(x), multiply then add (no FMA) to round as the scalar kernel does.
    unsafe fn axpy_impl(y: *mut f32, alpha: f32, x: *const u16, n: usize) {
        let va = _mm512_set1_ps(alpha);
        let mut i = 0;
        while i + 16 <= n {
            let p = _mm512_mul_ps(va, load16::<true>(x.add(i) as *const u8));
            _mm512_storeu_ps(y.add(i), _mm512_add_ps(_mm512_loadu_ps(y.add(i)), p));
            i += 16;
        }
        if i < n {
            let k: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
            let p = _mm512_mul_ps(va, load_tail::<true>(x.add(i) as *const u8, n - i));
            let s = _mm512_add_ps(_mm512_maskz_loadu_ps(k, y.add(i)), p);
            _mm512_mask_storeu_ps(y.add(i), k, s);
        }
    }
}

/// Safe wrapper: Σ a·b.
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: lengths differ");
    // SAFETY: only reachable through the AVX-512 table (features detected); both slices hold
    // `a.len()` elements and masked loads read no further.
    unsafe { dot_impl::<false>(a.as_ptr(), b.as_ptr() as *const u8, a.len()) }
}

/// Safe wrapper: Σ a·widen(b).
pub(crate) fn dot_f32_f16(a: &[f32], b: &[u16]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f32_f16: lengths differ");
    // SAFETY: as `dot_f32`.
    unsafe { dot_impl::<true>(a.as_ptr(), b.as_ptr() as *const u8, a.len()) }
}

/// Safe wrapper: y += alpha · widen(x).
pub(crate) fn axpy_f16(y: &mut [f32], alpha: f32, x: &[u16]) {
    assert_eq!(y.len(), x.len(), "axpy_f16: lengths differ");
    // SAFETY: as `dot_f32`.
    unsafe { axpy_impl(y.as_mut_ptr(), alpha, x.as_ptr(), y.len()) }
}
