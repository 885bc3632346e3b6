//! AVX-512 VNNI dot products of the 32-element block types against Q8_0 / Q8_1 activations.

use crate::quant::x86::avx2::blocks::Block32;
use crate::quant::x86::avx2::{check_dot, check_multi, f16_at, hsum_ps};
use std::arch::x86_64::*;

/// The features every function here is compiled for (the AVX2 helpers inline into them).
macro_rules! avx512 {
    ($($item:item)*) => {$(
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        $item
    )*};
}

avx512! {
    /// Weight blocks `x` and `x + WS` as one register: quants of the first in the low half.
    #[inline]
    unsafe fn quants2<T: Block32>(x: *const u8) -> __m512i {
        _mm512_inserti64x4(_mm512_castsi256_si512(T::quants(x)), T::quants(x.add(T::WS)), 1)
    }

    /// The activation quants of blocks `y` and `y + AS`.
    #[inline]
    unsafe fn act2<T: Block32>(y: *const u8) -> __m512i {
        let lo = _mm256_loadu_si256(y.add(T::AS - 32) as *const __m256i);
        let hi = _mm256_loadu_si256(y.add(2 * T::AS - 32) as *const __m256i);
        _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
    }

    /// The weight operand of `vpdpbusd`: the quants, or |quants| for signed types.
    #[inline]
    unsafe fn weight_operand2<T: Block32>(q: __m512i) -> __m512i {
        if T::SIGNED { _mm512_abs_epi8(q) } else { q }
    }

    /// Σ qx·qy of two blocks (eight i32 lanes each) from the weight operand `u` and the original
    /// quants `q`: signed types move the weight's sign onto the activation (exact for activation
    /// quants ≠ -128, see `dot_ss8`).
    #[inline]
    unsafe fn sum2<T: Block32>(u: __m512i, q: __m512i, yq: __m512i) -> __m512i {
        let yq = if T::SIGNED {
            let neg = _mm512_movepi8_mask(q);
            _mm512_mask_sub_epi8(yq, neg, _mm512_setzero_si512(), yq)
        } else {
            yq
        };
        _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, yq)
    }

    /// Σ qx·qy of one block with 256-bit VNNI, for an odd block count's last block.
    #[inline]
    unsafe fn sum1<T: Block32>(q: __m256i, y: *const u8) -> __m256i {
        let yq = _mm256_loadu_si256(y.add(T::AS - 32) as *const __m256i);
        let (u, yq) = if T::SIGNED {
            (_mm256_abs_epi8(q), _mm256_sign_epi8(yq, q))
        } else {
            (q, yq)
        };
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, yq)
    }

    /// Eight lanes of `a` then eight of `b`.
    #[inline]
    unsafe fn splat2(a: f32, b: f32) -> __m512 {
        _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1)
    }

    /// Adds blocks `xb`, `xb + WS` · `yb`, `yb + AS` to the lane accumulator and offset sum.
    #[inline]
    unsafe fn step2<T: Block32>(
        xb: *const u8,
        yb: *const u8,
        acc: __m512,
        summ: f32,
    ) -> (__m512, f32) {
        let q = quants2::<T>(xb);
        let s = _mm512_cvtepi32_ps(sum2::<T>(weight_operand2::<T>(q), q, act2::<T>(yb)));
        let d0 = f16_at(xb) * f16_at(yb);
        let d1 = f16_at(xb.add(T::WS)) * f16_at(yb.add(T::AS));
        let summ = if T::OFFSET {
            summ + f16_at(xb.add(2)) * f16_at(yb.add(2))
                + f16_at(xb.add(T::WS + 2)) * f16_at(yb.add(T::AS + 2))
        } else {
            summ
        };
        (_mm512_fmadd_ps(splat2(d0, d1), s, acc), summ)
    }

    /// # Safety
    /// The CPU has the tier's features; `x` holds `nb` weight blocks, `y` `nb` activation blocks.
    unsafe fn dot<T: Block32>(nb: usize, x: *const u8, y: *const u8) -> f32 {
        // Two independent chains of block pairs, kept in registers.
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let (mut summ0, mut summ1) = (0f32, 0f32);
        let mut i = 0;
        while i + 4 <= nb {
            let (xb, yb) = (x.add(i * T::WS), y.add(i * T::AS));
            (acc0, summ0) = step2::<T>(xb, yb, acc0, summ0);
            (acc1, summ1) = step2::<T>(xb.add(2 * T::WS), yb.add(2 * T::AS), acc1, summ1);
            i += 4;
        }
        if i + 2 <= nb {
            (acc0, summ0) = step2::<T>(x.add(i * T::WS), y.add(i * T::AS), acc0, summ0);
            i += 2;
        }
        let mut sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
        if i < nb {
            let (xb, yb) = (x.add(i * T::WS), y.add(i * T::AS));
            let s = _mm256_cvtepi32_ps(sum1::<T>(T::quants(xb), yb));
            sum += hsum_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(xb) * f16_at(yb)), s));
            if T::OFFSET {
                summ1 += f16_at(xb.add(2)) * f16_at(yb.add(2));
            }
        }
        sum + (summ0 + summ1)
    }

    /// `out[j] = dot(x, y + j·stride)` for `j < M`, each pair of weight blocks decoded once.
    ///
    /// # Safety
    /// As [`dot`] for each of the `M` activation rows; `out` has `M` elements.
    unsafe fn dot_multi<T: Block32, const M: usize>(
        nb: usize,
        x: *const u8,
        y: *const u8,
        stride: usize,
        out: &mut [f32],
    ) {
        let mut acc = [_mm512_setzero_ps(); M];
        let mut summ = [0f32; M];
        let mut i = 0;
        while i + 2 <= nb {
            let xb = x.add(i * T::WS);
            let q = quants2::<T>(xb);
            let u = weight_operand2::<T>(q);
            let (dx0, dx1) = (f16_at(xb), f16_at(xb.add(T::WS)));
            let (mx0, mx1) = if T::OFFSET {
                (f16_at(xb.add(2)), f16_at(xb.add(T::WS + 2)))
            } else {
                (0.0, 0.0)
            };
            for j in 0..M {
                let yb = y.add(j * stride + i * T::AS);
                let s = _mm512_cvtepi32_ps(sum2::<T>(u, q, act2::<T>(yb)));
                let d = splat2(dx0 * f16_at(yb), dx1 * f16_at(yb.add(T::AS)));
                acc[j] = _mm512_fmadd_ps(d, s, acc[j]);
                if T::OFFSET {
                    summ[j] += mx0 * f16_at(yb.add(2)) + mx1 * f16_at(yb.add(T::AS + 2));
                }
            }
            i += 2;
        }
        for j in 0..M {
            let mut sum = _mm512_reduce_add_ps(acc[j]);
            if i < nb {
                let (xb, yb) = (x.add(i * T::WS), y.add(j * stride + i * T::AS));
                let s = _mm256_cvtepi32_ps(sum1::<T>(T::quants(xb), yb));
                sum += hsum_ps(_mm256_mul_ps(_mm256_set1_ps(f16_at(xb) * f16_at(yb)), s));
                if T::OFFSET {
                    summ[j] += f16_at(xb.add(2)) * f16_at(yb.add(2));
                }
            }
            out[j] = sum + summ[j];
        }
    }
}

/// Safe `vec_dot` of a block type; only reachable through the AVX-512 table.
pub(crate) fn vec_dot<T: Block32>(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = check_dot(n, 32, T::WS, w, T::AS, a);
    // SAFETY: the AVX-512 table is only used on CPUs where tier detection found AVX2, FMA, F16C
    // and AVX-512 F/BW/VL/VNNI; `check_dot` verified both buffers hold `nb` blocks.
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
        // SAFETY: features as in `vec_dot`; `check_multi` verified every row j < out.len() holds
        // `nb` blocks at j·stride, and rows c·8.. are a subset.
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
