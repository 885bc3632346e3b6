//! The sparse FFN's `down` kernels: add the columns of a group of active neurons that share their
//! quantization scales (see `sparse::down_cols`), with the scales applied once per group.
//!
//! A Q4_0/Q4_1/Q8_0 `down` matrix quantizes each output row in blocks of 32 consecutive neurons,
//! with one scale (and for Q4_1 one minimum) per row and block. The 32 neurons of a block share
//! those scales, so their columns can be kept as bare quants (4 or 8 bits per weight, the
//! model's own values, nothing re-quantized) and the scales applied once to the block's sum:
//!
//! `out[r] += d[r] · Σ_j a_j·q_j[r] + m[r] · Σ_j a_j`
//!
//! **Bit-for-bit contract** (every tier returns these bits, so sparse decode does not depend on the
//! tier): per row, `acc` starts at 0 and takes `acc = acc + a_j·q_j[r]` for the columns in order
//! (separate multiply and add, no FMA); then `out[r] = out[r] + (d[r]·acc + m[r]·s)` for nibble
//! columns, `out[r] = out[r] + d[r]·acc` for byte columns, each product rounded to f32.
//!
//! **Nibble layout** of a column of `n` rows (`n` a multiple of 32): groups of 64 rows, the last
//! one 32 rows when `n % 64 == 32`; a group of `G` rows is `G/2` bytes, byte `j` holding row
//! `j` in its low nibble and row `j + G/2` in its high nibble. SIMD tiers split a whole group
//! with one mask and one shift.

use ::half::f16;

/// Rows per full nibble group.
pub(crate) const GROUP: usize = 64;

/// The quant (0..15) of row `r` in a nibble column.
#[inline(always)]
pub fn nib(col: &[u8], r: usize) -> u8 {
    let g0 = r / GROUP * GROUP;
    let half = (col.len() * 2 - g0).min(GROUP) / 2;
    let j = r - g0;
    let byte = col[g0 / 2 + j % half];
    if j < half {
        byte & 0x0F
    } else {
        byte >> 4
    }
}

/// Packs quants (0..15, one per row) into the nibble layout.
pub fn pack_nibbles(q: &[u8], col: &mut [u8]) {
    let n = q.len();
    assert!(
        n.is_multiple_of(32) && col.len() == n / 2,
        "pack_nibbles: sizes"
    );
    for g0 in (0..n).step_by(GROUP) {
        let half = (n - g0).min(GROUP) / 2;
        for j in 0..half {
            col[g0 / 2 + j] = (q[g0 + j] & 0x0F) | (q[g0 + half + j] << 4);
        }
    }
}

/// Checks the arguments every tier relies on (a mismatch is a caller bug and panics).
#[inline(always)]
pub(crate) fn check(
    out: &[f32],
    scales: &[u16],
    cols: &[&[u8]],
    a: &[f32],
    per_row: usize,
    bytes: usize,
) {
    let n = out.len();
    assert!(
        n.is_multiple_of(32),
        "down block: {n} rows is not a multiple of 32"
    );
    assert_eq!(scales.len(), per_row * n, "down block: scales");
    assert!(
        cols.len() <= a.len(),
        "down block: more columns than coefficients"
    );
    for c in cols {
        assert_eq!(c.len(), bytes, "down block: column size");
    }
}

/// `out[r] += d[r]·Σ a_j·q_j[r] + m[r]·s` over nibble columns; `scales` is `d` then `m`, `n` f16
/// each; `s` is `Σ a_j` (computed once by the caller).
pub(crate) fn down_nib4(out: &mut [f32], scales: &[u16], cols: &[&[u8]], a: &[f32], s: f32) {
    let n = out.len();
    check(out, scales, cols, a, 2, n / 2);
    let (d, m) = scales.split_at(n);
    for (r, o) in out.iter_mut().enumerate() {
        let mut acc = 0f32;
        for (c, &aj) in cols.iter().zip(a) {
            acc += aj * nib(c, r) as f32;
        }
        let dr = f16::from_bits(d[r]).to_f32();
        let mr = f16::from_bits(m[r]).to_f32();
        *o += dr * acc + mr * s;
    }
}

/// `out[r] += d[r]·Σ a_j·q_j[r]` over signed byte columns (`n` bytes each, row order); `scales`
/// is `d`, `n` f16.
pub(crate) fn down_i8(out: &mut [f32], scales: &[u16], cols: &[&[u8]], a: &[f32]) {
    let n = out.len();
    check(out, scales, cols, a, 1, n);
    for (r, o) in out.iter_mut().enumerate() {
        let mut acc = 0f32;
        for (c, &aj) in cols.iter().zip(a) {
            acc += aj * c[r] as i8 as f32;
        }
        *o += f16::from_bits(scales[r]).to_f32() * acc;
    }
}
