//! AVX-512 VNNI dot products of the 32-element block types against Q8_0 / Q8_1 activations.
//!
//! Two blocks fill a 512-bit register ([`Block32::quants_pair`]); their scales come widened
//! together ([`head_pair`]) and are spread over the two halves with one permute.

use crate::quant::x86::avx2::blocks::Block32;
use crate::quant::x86::avx2::legacy::{head_pair, offset_sum, scale_pair, single};
use crate::quant::x86::avx2::{check_dot, check_multi};
use std::arch::x86_64::*;

/// The features every function here is compiled for (the AVX2 helpers inline into them).
macro_rules! avx512 {
    ($($item:item)*) => {$(
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        $item
    )*};
}

avx512! {
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

    /// Lane 0 of `p` in the low eight lanes, lane 2 in the high eight: the two blocks' `dx·dy`.
    #[inline]
    unsafe fn spread(p: __m128) -> __m512 {
        let idx = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
        _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(p))
    }

    /// Adds blocks `xb`, `xb + WS` times `yb`, `yb + AS` to the lane accumulator and to the
    /// offset-term accumulator (see `scale_pair`).
    #[inline]
    unsafe fn pair<T: Block32>(
        xb: *const u8,
        yb: *const u8,
        acc: __m512,
        accm: __m128,
    ) -> (__m512, __m128) {
        let p = scale_pair::<T>(head_pair(xb, T::WS), yb);
        let q = T::quants_pair(xb);
        let s = _mm512_cvtepi32_ps(sum2::<T>(weight_operand2::<T>(q), q, act2::<T>(yb)));
        let accm = if T::OFFSET { _mm_add_ps(accm, p) } else { accm };
        (_mm512_fmadd_ps(spread(p), s, acc), accm)
    }

    /// # Safety
    /// The CPU has the tier's features; `x` holds `nb` weight blocks, `y` `nb` activation blocks.
    unsafe fn dot<T: Block32>(nb: usize, x: *const u8, y: *const u8) -> f32 {
        // Two independent chains of block pairs (unrolled by hand: indexing an accumulator
        // array with a loop-dependent index keeps it in memory).
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut accm = _mm_setzero_ps();
        let mut i = 0;
        while i + 4 <= nb {
            let (xb, yb) = (x.add(i * T::WS), y.add(i * T::AS));
            (acc0, accm) = pair::<T>(xb, yb, acc0, accm);
            (acc1, accm) = pair::<T>(xb.add(2 * T::WS), yb.add(2 * T::AS), acc1, accm);
            i += 4;
        }
        if i + 2 <= nb {
            (acc0, accm) = pair::<T>(x.add(i * T::WS), y.add(i * T::AS), acc0, accm);
            i += 2;
        }
        let acc = [acc0, acc1];
        let mut sum = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
        if T::OFFSET {
            sum += offset_sum(accm);
        }
        if i < nb {
            let (xb, yb) = (x.add(i * T::WS), y.add(i * T::AS));
            sum += single::<T>(T::quants(xb), xb, yb);
        }
        sum
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
        let mut accm = [_mm_setzero_ps(); M];
        let mut i = 0;
        while i + 2 <= nb {
            let xb = x.add(i * T::WS);
            let q = T::quants_pair(xb);
            let u = weight_operand2::<T>(q);
            let wx = head_pair(xb, T::WS);
            for j in 0..M {
                let yb = y.add(j * stride + i * T::AS);
                let p = scale_pair::<T>(wx, yb);
                let s = _mm512_cvtepi32_ps(sum2::<T>(u, q, act2::<T>(yb)));
                acc[j] = _mm512_fmadd_ps(spread(p), s, acc[j]);
                if T::OFFSET {
                    accm[j] = _mm_add_ps(accm[j], p);
                }
            }
            i += 2;
        }
        for j in 0..M {
            let mut sum = _mm512_reduce_add_ps(acc[j]);
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
