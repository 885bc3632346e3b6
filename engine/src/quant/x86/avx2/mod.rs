//! AVX2 (+FMA, F16C) kernels.
//!
//! The 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) share one dot-product loop: each type
//! only says how to turn a block into 32 bytes of quants ([`Block32::quants`]); the loop multiplies
//! them with the Q8_0 / Q8_1 activation quants with `vpmaddubsw` (u8 × i8 pairs into i16), widens to
//! i32 with `vpmaddwd` and accumulates `dx · dy · Σ` in f32 lanes. The integer sum of each block is
//! exact, as in the scalar kernels; only the float accumulation order differs.

pub(crate) mod blocks;
pub(crate) mod down_block;
pub(crate) mod float;
pub(crate) mod kquants;
pub(crate) mod legacy;

use std::arch::x86_64::*;

/// The f16 at `p` (unaligned) as f32, with F16C.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    let h = (p as *const u16).read_unaligned();
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
}

/// Sum of the eight lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Sum of the eight i32 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// 16 bytes at `p` split into nibbles: low nibbles in bytes 0-15, high nibbles in bytes 16-31,
/// which is the element order of the Q4 / Q5 block layouts.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn nibbles32(p: *const u8) -> __m256i {
    let v = _mm_loadu_si128(p as *const __m128i);
    let both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

/// The 32 bits of the little-endian word at `p` as 32 bytes, 0xff where the bit is set
/// (byte i for bit i): the fifth bits of Q5_0 / Q5_1.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn bits32(p: *const u8) -> __m256i {
    let w = (p as *const u32).read_unaligned() as i32;
    // Byte i gets byte i / 8 of the word...
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let r = _mm256_shuffle_epi8(_mm256_set1_epi32(w), shuf);
    // ...then every bit but bit i % 8 is set: all ones exactly when that bit was set.
    let r = _mm256_or_si256(r, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
    _mm256_cmpeq_epi8(r, _mm256_set1_epi64x(-1))
}

/// Σ x·y over groups of four bytes as eight i32 lanes, x unsigned (0..=255), y signed.
///
/// `vpmaddubsw` saturates its i16 pair sums: callers keep |x·y| pairs below 2^15 (4- to 6-bit
/// unsigned quants, or |x| ≤ 128 with |y| ≤ 127).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn dot_us8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
}

/// Σ x·y for signed x through the sign trick: |x| (as u8) times y with x's sign.
///
/// Exact for any x and for y ≠ -128 (negating -128 wraps); activation quants are in [-127, 127]
/// by construction (`quantize` maps the largest magnitude to ±127).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(crate) unsafe fn dot_ss8(x: __m256i, y: __m256i) -> __m256i {
    dot_us8(_mm256_abs_epi8(x), _mm256_sign_epi8(y, x))
}

/// Checks an n-element dot product's buffers and returns its block count: the safe wrappers'
/// guard, so the unsafe loops may read `nb` blocks from both without bounds checks.
#[inline(always)]
pub(crate) fn check_dot(n: usize, qk: usize, ws: usize, w: &[u8], as_: usize, a: &[u8]) -> usize {
    assert_eq!(n % qk, 0, "vec_dot: partial block");
    let nb = n / qk;
    assert!(
        w.len() >= nb * ws && a.len() >= nb * as_,
        "vec_dot: short buffer"
    );
    nb
}

/// As [`check_dot`] for `rows` activation rows `stride` bytes apart.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the two buffers, their strides and sizes, all needed
pub(crate) fn check_multi(
    n: usize,
    qk: usize,
    ws: usize,
    w: &[u8],
    as_: usize,
    a: &[u8],
    stride: usize,
    rows: usize,
) -> usize {
    let nb = check_dot(n, qk, ws, w, as_, a);
    if rows > 0 {
        assert!(
            (rows - 1)
                .checked_mul(stride)
                .and_then(|o| o.checked_add(nb * as_))
                .is_some_and(|end| end <= a.len()),
            "vec_dot_multi: short activation buffer"
        );
    }
    nb
}
