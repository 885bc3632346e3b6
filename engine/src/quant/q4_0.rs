//! Q4_0: 32 weights as 4-bit quants around 8 with one f16 scale (`d: f16, qs: [u8; 16]`, 18 bytes).
//!
//! Byte j holds element j in its low nibble and element j + 16 in its high nibble; w = (q - 8) · d.
//! Activations are Q8_0.

use super::{dequant_blocks, f16_at, q8_0};

const QK: usize = 32;
const BYTES: usize = 18;

/// `dequantize_row_q4_0`.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<BYTES, QK>(src, dst) {
        let d = f16_at(b, 0);
        let (lo, hi) = y.split_at_mut(QK / 2);
        for ((q, y0), y1) in b[2..].iter().zip(lo).zip(hi) {
            *y0 = ((q & 0x0f) as i32 - 8) as f32 * d;
            *y1 = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

/// `ggml_vec_dot_q4_0_q8_0_generic`: integer sum per block, then `sumi · dx · dy`.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in super::dot_blocks::<BYTES, { q8_0::BYTES }>(n, QK, w, a) {
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let q = x[2 + j];
            sumi0 += ((q & 0x0f) as i32 - 8) * q8_0::quant(y, j);
            sumi1 += ((q >> 4) as i32 - 8) * q8_0::quant(y, j + QK / 2);
        }
        sumf += (sumi0 + sumi1) as f32 * f16_at(x, 0) * f16_at(y, 0);
    }
    sumf
}
