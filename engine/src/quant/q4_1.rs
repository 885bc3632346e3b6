//! Q4_1: 32 weights as 4-bit quants with an f16 scale and offset (`d, m: f16, qs: [u8; 16]`, 20 bytes).
//!
//! Nibble layout as Q4_0; w = q · d + m. Activations are Q8_1, whose `s` turns the offset's
//! contribution `m · Σa` into a single product.

use super::{dequant_blocks, f16_at, q8_1};

const QK: usize = 32;
const BYTES: usize = 20;

/// `dequantize_row_q4_1`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<BYTES, QK>(src, dst) {
        let d = f16_at(b, 0);
        let m = f16_at(b, 2);
        let (lo, hi) = y.split_at_mut(QK / 2);
        for ((q, y0), y1) in b[4..].iter().zip(lo).zip(hi) {
            *y0 = (q & 0x0f) as i32 as f32 * d + m;
            *y1 = (q >> 4) as i32 as f32 * d + m;
        }
    }
}

/// `ggml_vec_dot_q4_1_q8_1_generic`: `(dx · dy) · sumi + mx · sy` per block.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in super::dot_blocks::<BYTES, { q8_1::BYTES }>(n, QK, w, a) {
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let q = x[4 + j];
            sumi0 += (q & 0x0f) as i32 * q8_1::quant(y, j);
            sumi1 += (q >> 4) as i32 * q8_1::quant(y, j + QK / 2);
        }
        sumf +=
            (f16_at(x, 0) * f16_at(y, 0)) * (sumi0 + sumi1) as f32 + f16_at(x, 2) * f16_at(y, 2);
    }
    sumf
}
