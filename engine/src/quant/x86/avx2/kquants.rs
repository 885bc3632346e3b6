//! AVX2 k-quant dot products against Q8_K.
//!
//! Per block, the weight quants are unpacked 32 at a time as unsigned bytes, multiplied with the
//! Q8_K quants by `vpmaddubsw` (i16 pair sums, which cannot saturate for ≤ 6-bit quants against
//! |q8| ≤ 128), weighted by their group's integer scale with `vpmaddwd` and summed in i32 lanes:
//! the block's integer sum is exact, as in the scalar kernels (whose 8-lane float order is not
//! reproduced). Signed quants (Q3_K's q - 4, Q6_K's q - 32) subtract the offset times the
//! activations; the minimum terms of Q2_K / Q4_K / Q5_K come from the Q8_K group sums, as ggml.

// The row index addresses parallel accumulator arrays and the row's activation pointer at once.
#![allow(clippy::needless_range_loop)]

use super::{check_dot, check_multi, f16_at, hsum_epi32, hsum_ps};
use crate::ggml_type::QK_K;
use std::arch::x86_64::*;

/// Q8_K block bytes.
const AS: usize = 292;

/// The f32 scale of the Q8_K block at `y`.
#[inline(always)]
unsafe fn q8k_d(y: *const u8) -> f32 {
    (y as *const f32).read_unaligned()
}

/// The Q8_K quants at `y`, elements `at..at + 32`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q8(y: *const u8, at: usize) -> __m256i {
    _mm256_loadu_si256(y.add(4 + at) as *const __m256i)
}

/// Σ q·y in i16 pairs, q unsigned.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn mul(q: __m256i, y: __m256i) -> __m256i {
    _mm256_maddubs_epi16(q, y)
}

/// Scale `a` for the first 16 elements of a 32-element vector and `b` for the last 16, as i16.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn scales2(a: i32, b: i32) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(b as i16), _mm_set1_epi16(a as i16))
}

/// Scales (bytes 0-7) and mins (bytes 8-15) of Q4_K / Q5_K from their 12 packed bytes at `p`:
/// `scale_min_k4` for all eight sub-blocks at once, on 32-bit words.
#[inline(always)]
unsafe fn k4_scales_mins(p: *const u8) -> [u8; 16] {
    const M1: u32 = 0x3f3f_3f3f;
    const M2: u32 = 0x0f0f_0f0f;
    const M3: u32 = 0x0303_0303;
    let w = |i: usize| (p.add(4 * i) as *const u32).read_unaligned();
    let (w0, w1, w2) = (w(0), w(1), w(2));
    let sc_lo = w0 & M1;
    let sc_hi = (w2 & M2) | (((w0 >> 6) & M3) << 4);
    let mn_lo = w1 & M1;
    let mn_hi = ((w2 >> 4) & M2) | (((w1 >> 6) & M3) << 4);
    let mut out = [0u8; 16];
    for (o, v) in out.chunks_exact_mut(4).zip([sc_lo, sc_hi, mn_lo, mn_hi]) {
        o.copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// Σ mins[g] · (bsum[2g] + bsum[2g+1]) over the eight 32-element groups of the Q8_K block `y`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn min_sum32(mins: *const u8, y: *const u8) -> i32 {
    let bsums = _mm256_loadu_si256(y.add(4 + QK_K) as *const __m256i);
    let group = _mm256_madd_epi16(bsums, _mm256_set1_epi16(1));
    let m = _mm256_cvtepu8_epi32(_mm_loadl_epi64(mins as *const __m128i));
    hsum_epi32(_mm256_mullo_epi32(group, m))
}

/// Q4_K (`Q5 = false`, 144-byte blocks) and Q5_K (176-byte blocks, fifth bits in `qh`) against
/// `M` activation rows `stride` bytes apart (`M = 1` is the plain dot product): each 32-quant
/// vector is unpacked once and used for every row.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q45k<const Q5: bool, const M: usize>(
    nb: usize,
    x: *const u8,
    y: *const u8,
    stride: usize,
    out: &mut [f32],
) {
    let ws = if Q5 { 176 } else { 144 };
    let qs_at = if Q5 { 48 } else { 16 };
    let low = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); M];
    let mut summ = [0f32; M];
    for i in 0..nb {
        let xb = x.add(i * ws);
        let yb = |j: usize| y.add(j * stride + i * AS);
        let sm = k4_scales_mins(xb.add(4));
        let (d, dmin) = (f16_at(xb), f16_at(xb.add(2)));
        for j in 0..M {
            summ[j] -= dmin * q8k_d(yb(j)) * min_sum32(sm.as_ptr().add(8), yb(j)) as f32;
        }
        let hbits = if Q5 {
            _mm256_loadu_si256(xb.add(16) as *const __m256i)
        } else {
            _mm256_setzero_si256()
        };
        let mut sumi = [_mm256_setzero_si256(); M];
        for c in 0..4 {
            let v = _mm256_loadu_si256(xb.add(qs_at + 32 * c) as *const __m256i);
            let mut lo = _mm256_and_si256(v, low);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
            if Q5 {
                // Fifth bit of element 32·g + l is bit g of qh[l]: 16 where set.
                let fifth = |g: usize| {
                    let m = _mm256_set1_epi8((1u8 << g) as i8);
                    let set = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, m), m);
                    _mm256_and_si256(set, _mm256_set1_epi8(16))
                };
                lo = _mm256_or_si256(lo, fifth(2 * c));
                hi = _mm256_or_si256(hi, fifth(2 * c + 1));
            }
            let s0 = _mm256_set1_epi16(sm[2 * c] as i16);
            let s1 = _mm256_set1_epi16(sm[2 * c + 1] as i16);
            for j in 0..M {
                let p0 = _mm256_madd_epi16(mul(lo, q8(yb(j), 64 * c)), s0);
                let p1 = _mm256_madd_epi16(mul(hi, q8(yb(j), 64 * c + 32)), s1);
                sumi[j] = _mm256_add_epi32(sumi[j], _mm256_add_epi32(p0, p1));
            }
        }
        for j in 0..M {
            let dj = _mm256_set1_ps(d * q8k_d(yb(j)));
            acc[j] = _mm256_fmadd_ps(dj, _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
    for j in 0..M {
        out[j] = hsum_ps(acc[j]) + summ[j];
    }
}

/// Q6_K: 6-bit quants around 32, sixteen signed 8-bit group scales; `M` rows as Q4_K.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q6k<const M: usize>(
    nb: usize,
    x: *const u8,
    y: *const u8,
    stride: usize,
    out: &mut [f32],
) {
    let low = _mm256_set1_epi8(0x0f);
    let three = _mm256_set1_epi8(3);
    let m32 = _mm256_set1_epi8(32);
    let mut acc = [_mm256_setzero_ps(); M];
    for i in 0..nb {
        let xb = x.add(i * 210);
        let yb = |j: usize| y.add(j * stride + i * AS);
        let sc = xb.add(192) as *const i8;
        let mut sumi = [_mm256_setzero_si256(); M];
        for h in 0..2 {
            let ql0 = _mm256_loadu_si256(xb.add(64 * h) as *const __m256i);
            let ql1 = _mm256_loadu_si256(xb.add(64 * h + 32) as *const __m256i);
            let qh = _mm256_loadu_si256(xb.add(128 + 32 * h) as *const __m256i);
            let hb = |s: i32| {
                let v = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(s));
                _mm256_slli_epi16(_mm256_and_si256(v, three), 4)
            };
            let q = [
                _mm256_or_si256(_mm256_and_si256(ql0, low), hb(0)),
                _mm256_or_si256(_mm256_and_si256(ql1, low), hb(2)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low), hb(4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low), hb(6)),
            ];
            for (k, &q) in q.iter().enumerate() {
                let at = 128 * h + 32 * k;
                let g = at / 16;
                let s = scales2(*sc.add(g) as i32, *sc.add(g + 1) as i32);
                for j in 0..M {
                    let yv = q8(yb(j), at);
                    // Σ (q - 32)·y = Σ q·y - Σ 32·y, both in i16 without saturation.
                    let p = _mm256_sub_epi16(mul(q, yv), mul(m32, yv));
                    sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(p, s));
                }
            }
        }
        let d = f16_at(xb.add(208));
        for j in 0..M {
            let dj = _mm256_set1_ps(d * q8k_d(yb(j)));
            acc[j] = _mm256_fmadd_ps(dj, _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
    for j in 0..M {
        out[j] = hsum_ps(acc[j]);
    }
}

/// The 16 signed Q3_K scales from their 12 packed bytes (see `kquants::q3k_scales`).
#[inline(always)]
unsafe fn q3k_scales(p: *const u8) -> [i32; 16] {
    let q = std::slice::from_raw_parts(p, 12);
    let mut out = [0i32; 16];
    for (j, s) in out.iter_mut().enumerate() {
        let low = if j < 8 { q[j] & 0x0f } else { q[j - 8] >> 4 };
        let high = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
        *s = (low | (high << 4)) as i32 - 32;
    }
    out
}

/// Q3_K: 2-bit quants plus an inverted third bit, 16 signed 6-bit scales; `M` rows as Q4_K.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q3k<const M: usize>(
    nb: usize,
    x: *const u8,
    y: *const u8,
    stride: usize,
    out: &mut [f32],
) {
    let three = _mm256_set1_epi8(3);
    let m4 = _mm256_set1_epi8(4);
    let mut acc = [_mm256_setzero_ps(); M];
    for i in 0..nb {
        let xb = x.add(i * 110);
        let yb = |j: usize| y.add(j * stride + i * AS);
        let sc = q3k_scales(xb.add(96));
        let hmask = _mm256_loadu_si256(xb as *const __m256i);
        let mut sumi = [_mm256_setzero_si256(); M];
        for h in 0..2 {
            let qs = _mm256_loadu_si256(xb.add(32 + 32 * h) as *const __m256i);
            for k in 0..4 {
                let at = 128 * h + 32 * k;
                let shift = _mm_cvtsi32_si128(2 * k as i32);
                let low = _mm256_and_si256(_mm256_srl_epi16(qs, shift), three);
                // u = low + 4·bit ∈ [0, 7]; the quant is u - 4.
                let m = _mm256_set1_epi8((1u8 << (4 * h + k)) as i8);
                let bit = _mm256_cmpeq_epi8(_mm256_and_si256(hmask, m), m);
                let u = _mm256_or_si256(low, _mm256_and_si256(bit, m4));
                let g = at / 16;
                let s = scales2(sc[g], sc[g + 1]);
                for j in 0..M {
                    let yv = q8(yb(j), at);
                    let p = _mm256_sub_epi16(mul(u, yv), mul(m4, yv));
                    sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(p, s));
                }
            }
        }
        let d = f16_at(xb.add(108));
        for j in 0..M {
            let dj = _mm256_set1_ps(d * q8k_d(yb(j)));
            acc[j] = _mm256_fmadd_ps(dj, _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
    for j in 0..M {
        out[j] = hsum_ps(acc[j]);
    }
}

/// Q2_K: 2-bit quants, 4-bit scales and mins per group of 16; `M` rows as Q4_K.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q2k<const M: usize>(
    nb: usize,
    x: *const u8,
    y: *const u8,
    stride: usize,
    out: &mut [f32],
) {
    let three = _mm256_set1_epi8(3);
    let mut acc = [_mm256_setzero_ps(); M];
    let mut summ = [0f32; M];
    for i in 0..nb {
        let xb = x.add(i * 84);
        let yb = |j: usize| y.add(j * stride + i * AS);
        let sc = _mm_loadu_si128(xb as *const __m128i);
        // Σ min[g]·bsum[g]: mins are the high nibbles of the scale bytes.
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0x0f)));
        let dmin = f16_at(xb.add(82));
        for j in 0..M {
            let bsums = _mm256_loadu_si256(yb(j).add(4 + QK_K) as *const __m256i);
            let msum = hsum_epi32(_mm256_madd_epi16(mins, bsums));
            summ[j] -= dmin * q8k_d(yb(j)) * msum as f32;
        }
        let mut sumi = [_mm256_setzero_si256(); M];
        for h in 0..2 {
            let qs = _mm256_loadu_si256(xb.add(16 + 32 * h) as *const __m256i);
            for k in 0..4 {
                let at = 128 * h + 32 * k;
                let shift = _mm_cvtsi32_si128(2 * k as i32);
                let q = _mm256_and_si256(_mm256_srl_epi16(qs, shift), three);
                let g = at / 16;
                let s = scales2((*xb.add(g) & 0x0f) as i32, (*xb.add(g + 1) & 0x0f) as i32);
                for j in 0..M {
                    let p = _mm256_madd_epi16(mul(q, q8(yb(j), at)), s);
                    sumi[j] = _mm256_add_epi32(sumi[j], p);
                }
            }
        }
        let d = f16_at(xb.add(80));
        for j in 0..M {
            let dj = _mm256_set1_ps(d * q8k_d(yb(j)));
            acc[j] = _mm256_fmadd_ps(dj, _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
    for j in 0..M {
        out[j] = hsum_ps(acc[j]) + summ[j];
    }
}

/// Safe `vec_dot` and `vec_dot_multi` of a k-quant: only reachable through the AVX2 / AVX-512
/// tables (AVX2, FMA and F16C detected); `check_dot` / `check_multi` verify that every row read
/// holds the blocks read.
macro_rules! wrappers {
    ($dot:ident, $multi:ident, $ws:expr, $imp:ident $(, $q5:expr)?) => {
        pub(crate) fn $dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
            let nb = check_dot(n, QK_K, $ws, w, AS, a);
            let mut out = [0f32];
            // SAFETY: see the macro's doc comment.
            unsafe { $imp::<$($q5,)? 1>(nb, w.as_ptr(), a.as_ptr(), 0, &mut out) };
            out[0]
        }

        pub(crate) fn $multi(n: usize, w: &[u8], a: &[u8], stride: usize, out: &mut [f32]) {
            let nb = check_multi(n, QK_K, $ws, w, AS, a, stride, out.len());
            let (x, y) = (w.as_ptr(), a.as_ptr());
            for (c, out) in out.chunks_mut(8).enumerate() {
                // SAFETY: see the macro's doc comment; rows c·8.. are a subset of those checked.
                unsafe {
                    let y = y.add(c * 8 * stride);
                    match out.len() {
                        8 => $imp::<$($q5,)? 8>(nb, x, y, stride, out),
                        7 => $imp::<$($q5,)? 7>(nb, x, y, stride, out),
                        6 => $imp::<$($q5,)? 6>(nb, x, y, stride, out),
                        5 => $imp::<$($q5,)? 5>(nb, x, y, stride, out),
                        4 => $imp::<$($q5,)? 4>(nb, x, y, stride, out),
                        3 => $imp::<$($q5,)? 3>(nb, x, y, stride, out),
                        2 => $imp::<$($q5,)? 2>(nb, x, y, stride, out),
                        _ => $imp::<$($q5,)? 1>(nb, x, y, stride, out),
                    }
                }
            }
        }
    };
}

wrappers!(vec_dot_q2_k, vec_dot_multi_q2_k, 84, dot_q2k);
wrappers!(vec_dot_q3_k, vec_dot_multi_q3_k, 110, dot_q3k);
wrappers!(vec_dot_q4_k, vec_dot_multi_q4_k, 144, dot_q45k, false);
wrappers!(vec_dot_q5_k, vec_dot_multi_q5_k, 176, dot_q45k, true);
wrappers!(vec_dot_q6_k, vec_dot_multi_q6_k, 210, dot_q6k);
