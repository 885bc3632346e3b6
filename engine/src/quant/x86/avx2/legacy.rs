//! AVX2 dot products of the 32-element block types against Q8_0 / Q8_1 activations.
//!
//! Blocks go in pairs: the f16 scales of two weight blocks and two activation blocks are widened
//! with one `vcvtph2ps` each ([`scale_pair`]), which costs less than eight scalar conversions.

use super::blocks::Block32;
use super::{check_dot, check_multi, dot_ss8, dot_us8, f16_at, hsum_ps};
use std::arch::x86_64::*;

/// Σ qx·qy of one block as eight i32 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn block_sum<T: Block32>(q: __m256i, y: *const u8) -> __m256i {
    let yq = _mm256_loadu_si256(y.add(T::AS - 32) as *const __m256i);
    if T::SIGNED {
        dot_ss8(q, yq)
    } else {
        dot_us8(q, yq)
    }
}

/// The first two f16s (`d`, and `m` or `s` where the format has them; otherwise two quant bytes,
/// never used) of the block at `p` and of the block at `p + size`, as f32 lanes 0-1 and 2-3.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn head_pair(p: *const u8, size: usize) -> __m128 {
    let w0 = (p as *const i32).read_unaligned();
    let w1 = (p.add(size) as *const i32).read_unaligned();
    _mm_cvtph_ps(_mm_insert_epi32(_mm_cvtsi32_si128(w0), w1, 1))
}

/// `[dx0·dy0, mx0·sy0, dx1·dy1, mx1·sy1]` for the weight heads `wx` ([`head_pair`]) and the
/// activation blocks at `y`, `y + AS` (lanes 1 and 3 only mean something for offset types).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn scale_pair<T: Block32>(wx: __m128, y: *const u8) -> __m128 {
    _mm_mul_ps(wx, head_pair(y, T::AS))
}

/// Lane 1 + lane 3: the offset terms of a [`scale_pair`] accumulator.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn offset_sum(m: __m128) -> f32 {
    let hi = _mm_movehl_ps(m, m);
    _mm_cvtss_f32(_mm_add_ss(_mm_movehdup_ps(m), _mm_movehdup_ps(hi)))
}

/// One block's contribution `dx·dy·Σ + mx·sy` computed on its own (an odd count's last block).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn single<T: Block32>(q: __m256i, xb: *const u8, yb: *const u8) -> f32 {
    let s = _mm256_cvtepi32_ps(block_sum::<T>(q, yb));
    let mut r = hsum_ps(s) * (f16_at(xb) * f16_at(yb));
    if T::OFFSET {
        r += f16_at(xb.add(2)) * f16_at(yb.add(2));
    }
    r
}

/// # Safety
/// AVX2, FMA and F16C; `x` holds `nb` weight blocks and `y` `nb` activation blocks.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<T: Block32>(nb: usize, x: *const u8, y: *const u8) -> f32 {
    // Even and odd blocks accumulate separately, so consecutive FMAs do not wait on each other.
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut accm = _mm_setzero_ps();
    let mut i = 0;
    while i + 2 <= nb {
        let (xb, yb) = (x.add(i * T::WS), y.add(i * T::AS));
        let p = scale_pair::<T>(head_pair(xb, T::WS), yb);
        let s0 = _mm256_cvtepi32_ps(block_sum::<T>(T::quants(xb), yb));
        let s1 = _mm256_cvtepi32_ps(block_sum::<T>(T::quants(xb.add(T::WS)), yb.add(T::AS)));
        acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), s0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehl_ps(p, p)), s1, acc1);
        if T::OFFSET {
            accm = _mm_add_ps(accm, p);
        }
        i += 2;
    }
    let mut sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    if T::OFFSET {
        sum += offset_sum(accm);
    }
    if i < nb {
        let (xb, yb) = (x.add(i * T::WS), y.add(i * T::AS));
        sum += single::<T>(T::quants(xb), xb, yb);
    }
    sum
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
    let mut accm = [_mm_setzero_ps(); M];
    let mut i = 0;
    while i + 2 <= nb {
        let xb = x.add(i * T::WS);
        let (q0, q1) = (T::quants(xb), T::quants(xb.add(T::WS)));
        let wx = head_pair(xb, T::WS);
        for j in 0..M {
            let yb = y.add(j * stride + i * T::AS);
            let p = scale_pair::<T>(wx, yb);
            let s0 = _mm256_cvtepi32_ps(block_sum::<T>(q0, yb));
            let s1 = _mm256_cvtepi32_ps(block_sum::<T>(q1, yb.add(T::AS)));
            let a = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), s0, acc[j]);
            acc[j] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehl_ps(p, p)), s1, a);
            if T::OFFSET {
                accm[j] = _mm_add_ps(accm[j], p);
            }
        }
        i += 2;
    }
    for j in 0..M {
        let mut sum = hsum_ps(acc[j]);
        if T::OFFSET {
            sum += offset_sum(accm[j]);
        }
        if i < nb {
            let (xb, yb) = (x.add(i * T::WS), y.add(j * stride + i * T::AS));
            sum += single::<T>(T::quants(xb), xb, yb);
        }
        out[j] = sum;
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
