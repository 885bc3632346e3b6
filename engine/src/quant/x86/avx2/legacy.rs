//! AVX2 dot products of the 32-element block types against Q8_0 / Q8_1 activations.

use super::blocks::Block32;
use super::{check_dot, check_multi, dot_ss8, dot_us8, f16_at, hsum_ps};
use std::arch::x86_64::*;

/// Σ qx·qy of one block as eight i32 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn block_sum<T: Block32>(q: __m256i, y: *const u8) -> __m256i {
    let yq = _mm256_loadu_si256(y.add(T::AS - 32) as *const __m256i);
    if T::SIGNED {
        dot_ss8(q, yq)
    } else {
        dot_us8(q, yq)
    }
}

/// Adds block `xb` · `yb` to the lane accumulator and the offset-term sum.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn step<T: Block32>(xb: *const u8, yb: *const u8, acc: __m256, summ: f32) -> (__m256, f32) {
    let s = _mm256_cvtepi32_ps(block_sum::<T>(T::quants(xb), yb));
    let d = _mm256_set1_ps(f16_at(xb) * f16_at(yb));
    let summ = if T::OFFSET {
        summ + f16_at(xb.add(2)) * f16_at(yb.add(2))
    } else {
        summ
    };
    (_mm256_fmadd_ps(d, s, acc), summ)
}

/// # Safety
/// AVX2, FMA and F16C; `x` holds `nb` weight blocks and `y` `nb` activation blocks.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<T: Block32>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // Two independent chains (even and odd blocks), kept in registers, so consecutive blocks'
    // FMAs and offset-term adds do not wait on each other.
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let (mut summ0, mut summ1) = (0f32, 0f32);
    let mut i = 0;
    while i + 2 <= nb {
        let (xb, yb) = (x.add(i * T::WS), y.add(i * T::AS));
        (acc0, summ0) = step::<T>(xb, yb, acc0, summ0);
        (acc1, summ1) = step::<T>(xb.add(T::WS), yb.add(T::AS), acc1, summ1);
        i += 2;
    }
    if i < nb {
        (acc0, summ0) = step::<T>(x.add(i * T::WS), y.add(i * T::AS), acc0, summ0);
    }
    hsum_ps(_mm256_add_ps(acc0, acc1)) + (summ0 + summ1)
}

/// `out[j] = dot(x, y + j·stride)` for `j < M`, each weight block unpacked once for all rows.
///
/// # Safety
/// As [`dot`] for each of the `M` activation rows; `out` has `M` elements.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_multi<T: Block32, const M: usize>(
    nb: usize,
    x: *const u8,
    y: *const u8,
    stride: usize,
    out: &mut [f32],
) {
    let mut acc = [_mm256_setzero_ps(); M];
    let mut summ = [0f32; M];
    for i in 0..nb {
        let xb = x.add(i * T::WS);
        let q = T::quants(xb);
        let dx = f16_at(xb);
        let mx = if T::OFFSET { f16_at(xb.add(2)) } else { 0.0 };
        for j in 0..M {
            let yb = y.add(j * stride + i * T::AS);
            let s = _mm256_cvtepi32_ps(block_sum::<T>(q, yb));
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dx * f16_at(yb)), s, acc[j]);
            if T::OFFSET {
                summ[j] += mx * f16_at(yb.add(2));
            }
        }
    }
    for j in 0..M {
        out[j] = hsum_ps(acc[j]) + summ[j];
    }
}

/// Safe `vec_dot` of a block type; only reachable through the AVX2 / AVX-512 tables.
pub(crate) fn vec_dot<T: Block32>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = check_dot(n, 32, T::WS, w, T::AS, a);
    // SAFETY: the tables holding this function are only used on CPUs with AVX2, FMA and F16C
    // (tier detection), and `check_dot` verified both buffers hold `nb` blocks.
    unsafe { dot::<T>(nb, w.as_ptr(), a.as_ptr()) }
}

/// Safe `vec_dot_multi` of a block type, in batches of up to eight activation rows.
pub(crate) fn vec_dot_multi<T: Block32>(
    n: usize,
    w: &[u8],
    a: &[u8],
    stride: usize,
    out: &mut [f32],
) {
    let nb = check_multi(n, 32, T::WS, w, T::AS, a, stride, out.len());
    let (x, y) = (w.as_ptr(), a.as_ptr());
    for (c, out) in out.chunks_mut(8).enumerate() {
        // SAFETY: AVX2/FMA/F16C as in `vec_dot`; `check_multi` verified that every row
        // j < out.len() holds `nb` blocks at j·stride, and rows c·8.. are a subset.
        unsafe {
            let y = y.add(c * 8 * stride);
            match out.len() {
                8 => dot_multi::<T, 8>(nb, x, y, stride, out),
                7 => dot_multi::<T, 7>(nb, x, y, stride, out),
                6 => dot_multi::<T, 6>(nb, x, y, stride, out),
                5 => dot_multi::<T, 5>(nb, x, y, stride, out),
                4 => dot_multi::<T, 4>(nb, x, y, stride, out),
                3 => dot_multi::<T, 3>(nb, x, y, stride, out),
                2 => dot_multi::<T, 2>(nb, x, y, stride, out),
                _ => dot_multi::<T, 1>(nb, x, y, stride, out),
            }
        }
    }
}
