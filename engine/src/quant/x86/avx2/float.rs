//! AVX2 float kernels: f32 / f16 / bf16 dot products and the f16 axpy of attention.

use super::hsum_ps;
use std::arch::x86_64::*;

/// Σ a·b, 32 lanes in four accumulators, scalar tail.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f32_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_loadu_ps(pa.add(i + 8 * k));
            let y = _mm256_loadu_ps(pb.add(i + 8 * k));
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i)),
            _mm256_loadu_ps(pb.add(i)),
            acc[0],
        );
        i += 8;
    }
    let acc = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum_ps(acc);
    while i < n {
        s += a[i] * b[i];
        i += 1;
    }
    s
}

/// Eight halves at `p` widened to f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_f16x8(p: *const u16) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
}

/// The half `h` as f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn f16_to_f32(h: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
}

/// Σ a·widen(b), as [`dot_f32_impl`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f32_f16_impl(a: &[f32], b: &[u16]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_loadu_ps(pa.add(i + 8 * k));
            *acc = _mm256_fmadd_ps(x, load_f16x8(pb.add(i + 8 * k)), *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), load_f16x8(pb.add(i)), acc[0]);
        i += 8;
    }
    let acc = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum_ps(acc);
    while i < n {
        s += a[i] * f16_to_f32(b[i]);
        i += 1;
    }
    s
}

/// y += alpha · widen(x), multiply then add (no FMA) so every element rounds exactly as the
/// scalar kernel: attention output does not depend on the tier.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn axpy_f16_impl(y: &mut [f32], alpha: f32, x: &[u16]) {
    let n = y.len().min(x.len());
    let (py, px) = (y.as_mut_ptr(), x.as_ptr());
    let va = _mm256_set1_ps(alpha);
    let mut i = 0;
    while i + 8 <= n {
        let p = _mm256_mul_ps(va, load_f16x8(px.add(i)));
        _mm256_storeu_ps(py.add(i), _mm256_add_ps(_mm256_loadu_ps(py.add(i)), p));
        i += 8;
    }
    while i < n {
        y[i] += alpha * f16_to_f32(x[i]);
        i += 1;
    }
}

/// Adds the eight f32 products `p` to two f64 accumulators (the scalar kernels sum in f64).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn add_pd(acc: &mut [__m256d; 2], p: __m256) {
    acc[0] = _mm256_add_pd(acc[0], _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
    acc[1] = _mm256_add_pd(acc[1], _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
}

/// Sum of four f64 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn hsum_pd(v: __m256d) -> f64 {
    let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
}

/// Which float format a weight row and its activations are in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fmt {
    F32,
    F16,
    Bf16,
}

/// Eight elements of format `f` at byte pointer `p`, as f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load8(f: Fmt, p: *const u8) -> __m256 {
    match f {
        Fmt::F32 => _mm256_loadu_ps(p as *const f32),
        Fmt::F16 => _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)),
        Fmt::Bf16 => {
            let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
            _mm256_castsi256_ps(_mm256_slli_epi32(h, 16))
        }
    }
}

/// One element of format `f` at `p`, as f32.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load1(f: Fmt, p: *const u8) -> f32 {
    match f {
        Fmt::F32 => (p as *const f32).read_unaligned(),
        Fmt::F16 => f16_to_f32((p as *const u16).read_unaligned()),
        Fmt::Bf16 => f32::from_bits(((p as *const u16).read_unaligned() as u32) << 16),
    }
}

/// Σ w·a with f32 products summed in f64, as the scalar F32 / F16 / BF16 `vec_dot`: the products
/// are the same, only the order of the f64 sum differs.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_fmt(f: Fmt, n: usize, w: *const u8, a: *const u8) -> f64 {
    let es = if f == Fmt::F32 { 4 } else { 2 };
    let mut acc = [_mm256_setzero_pd(); 2];
    let mut i = 0;
    while i + 8 <= n {
        let p = _mm256_mul_ps(load8(f, w.add(i * es)), load8(f, a.add(i * es)));
        add_pd(&mut acc, p);
        i += 8;
    }
    let mut s = hsum_pd(_mm256_add_pd(acc[0], acc[1]));
    while i < n {
        s += (load1(f, w.add(i * es)) * load1(f, a.add(i * es))) as f64;
        i += 1;
    }
    s
}

/// Safe `vec_dot` of a float format with element size `es`.
fn vec_dot_fmt(f: Fmt, es: usize, n: usize, w: &[u8], a: &[u8]) -> f32 {
    assert!(
        w.len() >= n * es && a.len() >= n * es,
        "vec_dot: short buffer"
    );
    // SAFETY: only reachable through tables for tiers with AVX2/FMA/F16C; lengths checked above.
    unsafe { dot_fmt(f, n, w.as_ptr(), a.as_ptr()) as f32 }
}

pub(crate) fn vec_dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    vec_dot_fmt(Fmt::F32, 4, n, w, a)
}

pub(crate) fn vec_dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    vec_dot_fmt(Fmt::F16, 2, n, w, a)
}

pub(crate) fn vec_dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    vec_dot_fmt(Fmt::Bf16, 2, n, w, a)
}

/// Safe wrapper of [`dot_f32_impl`].
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: lengths differ");
    // SAFETY: only reachable through tables for tiers with AVX2/FMA/F16C.
    unsafe { dot_f32_impl(a, b) }
}

/// Safe wrapper of [`dot_f32_f16_impl`].
pub(crate) fn dot_f32_f16(a: &[f32], b: &[u16]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_f32_f16: lengths differ");
    // SAFETY: as `dot_f32`.
    unsafe { dot_f32_f16_impl(a, b) }
}

/// Safe wrapper of [`axpy_f16_impl`].
pub(crate) fn axpy_f16(y: &mut [f32], alpha: f32, x: &[u16]) {
    assert_eq!(y.len(), x.len(), "axpy_f16: lengths differ");
    // SAFETY: as `dot_f32`.
    unsafe { axpy_f16_impl(y, alpha, x) }
}
