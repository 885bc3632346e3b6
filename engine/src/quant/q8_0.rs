//! Q8_0: blocks of 32 signed bytes with one f16 scale (`d: f16, qs: [i8; 32]`, 34 bytes).
//!
//! Both a weight type and the activation format for Q4_0 / Q5_0 / Q8_0 weights. Quantization is
//! `quantize_row_q8_0_ref`: d = max|x| / 127 and q = roundf(x / d) (ties away from zero).

use super::{dequant_blocks, f16_at, put_f16};

pub(crate) const QK: usize = 32;
pub(crate) const BYTES: usize = 34;

/// The block's quants as signed integers.
#[inline(always)]
pub(crate) fn quant(b: &[u8; BYTES], j: usize) -> i32 {
    b[2 + j] as i8 as i32
}

/// y = q · d.
pub(crate) fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in dequant_blocks::<BYTES, QK>(src, dst) {
        let d = f16_at(b, 0);
        for (j, y) in y.iter_mut().enumerate() {
            *y = quant(b, j) as f32 * d;
        }
    }
}

/// Per block an exact integer dot product, then `sumi · (dx · dy)` as `ggml_vec_dot_q8_0_q8_0`.
pub(crate) fn vec_dot(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (x, y) in super::dot_blocks::<BYTES, BYTES>(n, QK, w, a) {
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += quant(x, j) * quant(y, j);
        }
        sumf += sumi as f32 * (f16_at(x, 0) * f16_at(y, 0));
    }
    sumf
}

/// `quantize_row_q8_0_ref`.
pub(crate) fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in super::quant_blocks::<QK, BYTES>(src, dst) {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(b, 0, d);
        for (q, v) in b[2..].iter_mut().zip(x) {
            // `round` is C's roundf (half away from zero); `as` saturates where C would be UB.
            *q = (v * id).round() as i8 as u8;
        }
    }
}

/// Number of blocks of an axpy over `y`, checking `row` holds exactly that many Q8_0 blocks: the
/// common prologue of every tier's [`axpy`] (a mismatch is a caller bug and panics).
#[inline(always)]
pub(crate) fn axpy_blocks(y: &[f32], row: &[u8]) -> usize {
    assert_eq!(y.len() % QK, 0, "axpy_q8_0: partial block");
    let nb = y.len() / QK;
    assert_eq!(row.len(), nb * BYTES, "axpy_q8_0: row size");
    nb
}

/// `y[j] += alpha · dequant(row)[j]`: the sparse FFN adding one active neuron's column of `down`
/// (a neuron-major Q8_0 copy, see `sparse::down_t`) to its output.
///
/// Per block `s = d · alpha` is rounded once to f32, then each element gets `y + s·q` with a
/// separate multiply and add. The SIMD tiers do exactly these operations, so every tier returns
/// these bits and sparse decode does not depend on the tier.
pub(crate) fn axpy(y: &mut [f32], alpha: f32, row: &[u8]) {
    let nb = axpy_blocks(y, row);
    for (yb, b) in y.chunks_exact_mut(QK).zip(super::blocks::<BYTES>(row, nb)) {
        let s = f16_at(b, 0) * alpha;
        for (j, y) in yb.iter_mut().enumerate() {
            *y += s * quant(b, j) as f32;
        }
    }
}

/// Four [`axpy`] calls in a row (`rows[0]` first): the reference of the SIMD tiers' fused
/// variant, which loads and stores `y` once for the four rows and rounds exactly as this does.
pub(crate) fn axpy_x4(y: &mut [f32], alpha: [f32; 4], rows: [&[u8]; 4]) {
    for (a, row) in alpha.into_iter().zip(rows) {
        axpy(y, a, row);
    }
}
