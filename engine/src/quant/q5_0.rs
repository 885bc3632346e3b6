//! Q5_0: 32 weights as 5-bit quants around 16 with one f16 scale
//! (`d: f16, qh: [u8; 4], qs: [u8; 16]`, 22 bytes).
//!
//! The low four bits are laid out as Q4_0; bit j of the little-endian u32 `qh` is the fifth bit of
//! element j. w = (q - 16) · d. Activations are Q8_0.

use super::{dequant_blocks, f16_at, q8_0};

const QK: usize = 32;
const BYTES: usize = 22;

/// The fifth-bit word.
#[inline(always)]
fn high_bits(b: &[u8; BYTES]) -> u32 {
    u32::from_le_bytes([b[2], b[3], b[4], b[5]])
}

/// Elements j and j + 16 of a block, as signed values in [-16, 15].
#[inline(always)]
fn pair(b: &[u8; BYTES], qh: u32, j: usize) -> (i32, i32) {
    let q = b[6 + j];
    let h0 = ((qh >> j) << 4) & 0x10;
    let h1 = (qh >> (j + 12)) & 0x10;
    (
        ((q & 0x0f) as u32 | h0) as i32 - 16,
        ((q >> 4) as u32 | h1) as i32 - 16,
    )
}

/// `dequantize_row_q5_0`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<BYTES, QK>(src, dst) {
        let d = f16_at(b, 0);
        let qh = high_bits(b);
        for j in 0..QK / 2 {
            let (x0, x1) = pair(b, qh, j);
            y[j] = x0 as f32 * d;
            y[j + QK / 2] = x1 as f32 * d;
        }
    }
}

/// `ggml_vec_dot_q5_0_q8_0_generic`: `(dx · dy) · sumi` per block.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in super::dot_blocks::<BYTES, { q8_0::BYTES }>(n, QK, w, a) {
        let qh = high_bits(x);
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let (x0, x1) = pair(x, qh, j);
            sumi0 += x0 * q8_0::quant(y, j);
            sumi1 += x1 * q8_0::quant(y, j + QK / 2);
        }
        sumf += (f16_at(x, 0) * f16_at(y, 0)) * (sumi0 + sumi1) as f32;
    }
    sumf
}
