//! Q5_1: 32 weights as 5-bit quants with an f16 scale and offset
//! (`d, m: f16, qh: [u8; 4], qs: [u8; 16]`, 24 bytes).
//!
//! Bit layout as Q5_0; w = q · d + m. Activations are Q8_1 (see Q4_1 for why).

use super::{dequant_blocks, f16_at, q8_1};

const QK: usize = 32;
const BYTES: usize = 24;

/// The fifth-bit word.
#[inline(always)]
fn high_bits(b: &[u8; BYTES]) -> u32 {
    u32::from_le_bytes([b[4], b[5], b[6], b[7]])
}

/// Elements j and j + 16 of a block, in [0, 31].
#[inline(always)]
fn pair(b: &[u8; BYTES], qh: u32, j: usize) -> (i32, i32) {
    let q = b[8 + j];
    let h0 = ((qh >> j) << 4) & 0x10;
    let h1 = (qh >> (j + 12)) & 0x10;
    (
        ((q & 0x0f) as u32 | h0) as i32,
        ((q >> 4) as u32 | h1) as i32,
    )
}

/// `dequantize_row_q5_1`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<BYTES, QK>(src, dst) {
        let d = f16_at(b, 0);
        let m = f16_at(b, 2);
        let qh = high_bits(b);
        for j in 0..QK / 2 {
            let (x0, x1) = pair(b, qh, j);
            y[j] = x0 as f32 * d + m;
            y[j + QK / 2] = x1 as f32 * d + m;
        }
    }
}

/// `ggml_vec_dot_q5_1_q8_1_generic`: `(dx · dy) · sumi + mx · sy` per block.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in super::dot_blocks::<BYTES, { q8_1::BYTES }>(n, QK, w, a) {
        let qh = high_bits(x);
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let (x0, x1) = pair(x, qh, j);
            sumi0 += x0 * q8_1::quant(y, j);
            sumi1 += x1 * q8_1::quant(y, j + QK / 2);
        }
        sumf +=
            (f16_at(x, 0) * f16_at(y, 0)) * (sumi0 + sumi1) as f32 + f16_at(x, 2) * f16_at(y, 2);
    }
    sumf
}
