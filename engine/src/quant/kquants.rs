//! What the k-quants share: the Q8_K activation block's fields, the packed 6-bit scales of
//! Q3_K / Q4_K / Q5_K, and the eight-lane integer accumulation of ggml's scalar k-quant dot products.
//!
//! ggml's generic Q3_K..Q6_K dot products accumulate `scale · a · q8` into eight i32 lanes
//! (element e goes to lane e % 8), turn each lane into f32 with its own `d` multiply, and add the eight
//! f32 lanes only at the very end of the row. The integer part is exact in any order, but the lanes
//! fix the float rounding, so [`lane_sums`] keeps them to stay bit-identical with llama.cpp.

use super::q8_k;
use crate::ggml_type::QK_K;

/// The i8 quants of a Q8_K block.
#[inline(always)]
pub(crate) fn q8k_quants(b: &[u8; q8_k::BYTES]) -> &[u8; QK_K] {
    b[4..4 + QK_K].try_into().expect("fixed range")
}

/// The f32 scale of a Q8_K block.
#[inline(always)]
pub(crate) fn q8k_d(b: &[u8; q8_k::BYTES]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The sum of the quants of group j (16 elements) of a Q8_K block.
#[inline(always)]
pub(crate) fn q8k_bsum(b: &[u8; q8_k::BYTES], j: usize) -> i32 {
    let at = 4 + QK_K + 2 * j;
    i16::from_le_bytes([b[at], b[at + 1]]) as i32
}

/// Scale and min of sub-block j (of 8) from the 12 packed bytes of Q4_K / Q5_K
/// (`get_scale_min_k4`): sub-blocks 0-3 keep their 6 bits in the low bits of bytes 0-3 (scale) and
/// 4-7 (min); sub-blocks 4-7 take their low nibbles from bytes 8-11 and their top two bits from the
/// spare high bits of bytes 0-7.
#[inline(always)]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The 16 signed scales of Q3_K from their 12 packed bytes: 6 bits each, stored with an offset of 32.
/// Scale j's low nibble is in byte j (j < 8, low nibble) or byte j - 8 (high nibble); its top two
/// bits are bits 2·(j / 4) of byte 8 + j % 4.
#[inline(always)]
pub(crate) fn q3k_scales(q: &[u8]) -> [i32; 16] {
    let mut out = [0i32; 16];
    for (j, s) in out.iter_mut().enumerate() {
        let low = if j < 8 { q[j] & 0x0f } else { q[j - 8] >> 4 };
        let high = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
        *s = (low | (high << 4)) as i32 - 32;
    }
    out
}

/// Eight lanes of Σ scale[e / GROUP] · a[e] · q8[e], element e in lane e % 8.
///
/// `a` holds the unpacked weight quants, `q8` the Q8_K quants (raw bytes, read as i8) and `scales`
/// one integer scale per group of `GROUP` elements.
#[inline(always)]
pub(crate) fn lane_sums<const GROUP: usize>(
    a: &[i8; QK_K],
    q8: &[u8; QK_K],
    scales: &[i32],
) -> [i32; 8] {
    assert_eq!(scales.len() * GROUP, QK_K);
    let mut lanes = [0i32; 8];
    for ((a, q), &s) in a
        .chunks_exact(GROUP)
        .zip(q8.chunks_exact(GROUP))
        .zip(scales)
    {
        // All scales fit an i16 (6-bit or i8); saying so lets LLVM use 16-bit multiplies, which
        // baseline x86-64 (SSE2) has for vectors where it lacks a 32-bit one.
        let s = s as i16 as i32;
        for (a, q) in a.chunks_exact(8).zip(q.chunks_exact(8)) {
            for l in 0..8 {
                // ggml forms the product in an i16 too; it always fits (|a| ≤ 32, |q8| ≤ 128).
                let p = a[l] as i16 * q[l] as i8 as i16;
                lanes[l] += s * p as i32;
            }
        }
    }
    lanes
}

/// Adds one block's lanes to the row's f32 lane sums: `sums[l] += d · lanes[l]`.
#[inline(always)]
pub(crate) fn add_lanes(sums: &mut [f32; 8], d: f32, lanes: &[i32; 8]) {
    for (s, &l) in sums.iter_mut().zip(lanes) {
        *s += d * l as f32;
    }
}

/// The row result from the lane sums: `acc + sums[0] + ... + sums[7]`, in that order.
#[inline(always)]
pub(crate) fn finish_lanes(mut acc: f32, sums: &[f32; 8]) -> f32 {
    for &s in sums {
        acc += s;
    }
    acc
}
