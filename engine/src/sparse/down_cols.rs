//! `ffn_down` by neuron: each neuron's output column as bare quants, with the scales kept per block
//! of 32 neurons, so the sparse FFN reads only the active neurons' columns and applies the scales
//! once per block ([`crate::quant::FloatKernels::down_nib4`]).
//!
//! A Q4_0/Q4_1/Q8_0 `down` row quantizes 32 consecutive neurons with one scale `d` (and, for Q4_1,
//! one offset `m`), so the 32 neurons of a block share `d[r]` and `m[r]` for every output row `r`.
//! Keeping those per block and the quants per neuron stores the model's own numbers, nothing
//! re-quantized, in about the bytes of the matrix: a SmolLM2 column is 288 bytes of nibbles, plus
//! 2304 bytes of scales per block of 32 (576 rows × f16 `d` and `m`). The earlier neuron-major copy
//! re-quantized columns to Q8_0 (612 bytes each): twice the bytes for every active neuron, and a
//! small rounding error.
//!
//! Other source types (K-quants, Q5, F16...) have no such shared 32-neuron scales: their columns
//! are re-quantized to signed bytes with a per-block `d` (as Q8_0 along the neuron axis), which
//! rounds by at most half a step of 1/127 of the block's largest weight in the row.

use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::model::weights::Matrix;
use crate::quant::pack_nibbles;
use ::half::f16;

/// Neurons that share scales.
pub const BLOCK: usize = 32;

/// How the columns are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColKind {
    /// 4-bit quants in the nibble layout of [`crate::quant::FloatKernels::down_nib4`]; scales
    /// `d` and `m` per row and block (from Q4_0 and Q4_1).
    Nib4,
    /// Signed bytes in row order; scale `d` per row and block (from Q8_0, or re-quantized).
    I8,
}

impl ColKind {
    /// The column format for a `down` matrix of type `t`.
    pub fn for_type(t: GgmlType) -> ColKind {
        match t {
            GgmlType::Q4_0 | GgmlType::Q4_1 => ColKind::Nib4,
            _ => ColKind::I8,
        }
    }

    /// One format for all of a model's layers (the neuron bundle's records have one size):
    /// nibbles when every layer's `down` is Q4_0/Q4_1, else bytes (quantizers mix types across
    /// layers, e.g. Q6_K for some `down` matrices of a Q4_K_M file).
    pub fn for_types(types: impl IntoIterator<Item = GgmlType>) -> ColKind {
        let mut kind = ColKind::Nib4;
        for t in types {
            if ColKind::for_type(t) == ColKind::I8 {
                kind = ColKind::I8;
            }
        }
        kind
    }

    /// Bytes of a column of `n_embd` rows.
    pub fn col_bytes(self, n_embd: usize) -> usize {
        match self {
            ColKind::Nib4 => n_embd / 2,
            ColKind::I8 => n_embd,
        }
    }

    /// f16 scales per row and block.
    pub fn scales_per_row(self) -> usize {
        match self {
            ColKind::Nib4 => 2,
            ColKind::I8 => 1,
        }
    }

    /// A stable code for file headers.
    pub fn code(self) -> u32 {
        match self {
            ColKind::Nib4 => 1,
            ColKind::I8 => 2,
        }
    }

    /// The format a header's [`ColKind::code`] names (None for a code no format has).
    pub fn from_code(code: u32) -> Option<Self> {
        [ColKind::Nib4, ColKind::I8]
            .into_iter()
            .find(|k| k.code() == code)
    }
}

/// One layer's `down` by neuron.
pub struct DownCols {
    pub kind: ColKind,
    pub n_embd: usize,
    pub n_ff: usize,
    /// Per block of 32 neurons, `scales_per_row × n_embd` f16 bits: `d[0..n_embd]`, then (nibble
    /// columns) `m[0..n_embd]`.
    pub scales: Vec<u16>,
    /// Column of neuron `i` (original index) at `i · col_bytes`; empty when built scales-only (the
    /// columns then come from the neuron bundle's records).
    pub cols: Vec<u8>,
    pub col_bytes: usize,
}

/// Checks that sparse decode can split `down` (`n_embd × n_ff`) into columns and blocks.
pub fn check_shape(n_embd: usize, n_ff: usize) -> Result<()> {
    if !n_embd.is_multiple_of(32) || !n_ff.is_multiple_of(BLOCK) || n_ff == 0 {
        return Err(Error::Model(format!(
            "sparse decode needs an FFN width and embedding width that are multiples of 32 (this model has {n_ff} and {n_embd})"
        )));
    }
    Ok(())
}

impl DownCols {
    /// Splits `down` (`n_embd × n_ff`, its bytes in `data`, row 0 first) into per-neuron columns
    /// of format `kind` and per-block scales; with `with_cols` false only the scales are kept.
    /// Exact for Q4_0/Q4_1 into nibbles and Q4_0/Q8_0 into bytes; other types are re-quantized to
    /// bytes.
    pub fn build(down: &Matrix, data: &[u8], kind: ColKind, with_cols: bool) -> Result<Self> {
        let (n_embd, n_ff) = (down.rows, down.cols);
        check_shape(n_embd, n_ff)?;
        if data.len() != down.bytes() {
            return Err(Error::Model(format!(
                "ffn_down holds {} bytes, expected {}",
                data.len(),
                down.bytes()
            )));
        }
        if kind == ColKind::Nib4 && ColKind::for_type(down.dtype) != ColKind::Nib4 {
            return Err(Error::Model(format!(
                "a {} ffn_down cannot be stored as 4-bit columns",
                down.dtype
            )));
        }
        let col_bytes = kind.col_bytes(n_embd);
        let spr = kind.scales_per_row();
        let n_blocks = n_ff / BLOCK;
        let mut scales = vec![0u16; n_blocks * spr * n_embd];
        // Quants by neuron then row (one byte each), packed per column at the end.
        let mut q = vec![0u8; if with_cols { n_ff * n_embd } else { 0 }];
        let mut dense = vec![0f32; n_ff];
        for r in 0..n_embd {
            let row = &data[r * down.row_bytes..(r + 1) * down.row_bytes];
            for b in 0..n_blocks {
                let s = &mut scales[b * spr * n_embd..(b + 1) * spr * n_embd];
                let mut put_q = |t: usize, v: u8| {
                    if with_cols {
                        q[(b * BLOCK + t) * n_embd + r] = v;
                    }
                };
                match (kind, down.dtype) {
                    (ColKind::Nib4, _) => {
                        let (bytes, qs_at) = if down.dtype == GgmlType::Q4_0 {
                            (18, 2)
                        } else {
                            (20, 4)
                        };
                        let blk = &row[b * bytes..(b + 1) * bytes];
                        let d = u16::from_le_bytes([blk[0], blk[1]]);
                        s[r] = d;
                        s[n_embd + r] = if down.dtype == GgmlType::Q4_0 {
                            // w = d·(q − 8) = d·q + (−8d); −8d is exact in f16.
                            f16::from_f32(-8.0 * f16::from_bits(d).to_f32()).to_bits()
                        } else {
                            u16::from_le_bytes([blk[2], blk[3]])
                        };
                        for t in 0..16 {
                            let byte = blk[qs_at + t];
                            put_q(t, byte & 0x0F);
                            put_q(t + 16, byte >> 4);
                        }
                    }
                    (ColKind::I8, GgmlType::Q4_0) => {
                        // w = d·(q − 8): the shifted quant fits a signed byte exactly.
                        let blk = &row[b * 18..(b + 1) * 18];
                        s[r] = u16::from_le_bytes([blk[0], blk[1]]);
                        for t in 0..16 {
                            let byte = blk[2 + t];
                            put_q(t, ((byte & 0x0F) as i8 - 8) as u8);
                            put_q(t + 16, ((byte >> 4) as i8 - 8) as u8);
                        }
                    }
                    (ColKind::I8, GgmlType::Q8_0) => {
                        let blk = &row[b * 34..(b + 1) * 34];
                        s[r] = u16::from_le_bytes([blk[0], blk[1]]);
                        for t in 0..BLOCK {
                            put_q(t, blk[2 + t]);
                        }
                    }
                    _ => {
                        if b == 0 {
                            (down.kernels.dequantize)(row, &mut dense);
                        }
                        let x = &dense[b * BLOCK..(b + 1) * BLOCK];
                        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                        let d = f16::from_f32(amax / 127.0);
                        s[r] = d.to_bits();
                        let d = d.to_f32();
                        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                        for (t, v) in x.iter().enumerate() {
                            put_q(t, (v * id).round().clamp(-127.0, 127.0) as i8 as u8);
                        }
                    }
                }
            }
        }
        let cols = if with_cols {
            let mut cols = vec![0u8; n_ff * col_bytes];
            for (i, dst) in cols.chunks_exact_mut(col_bytes).enumerate() {
                let src = &q[i * n_embd..(i + 1) * n_embd];
                match kind {
                    ColKind::Nib4 => pack_nibbles(src, dst),
                    ColKind::I8 => dst.copy_from_slice(src),
                }
            }
            cols
        } else {
            Vec::new()
        };
        Ok(DownCols {
            kind,
            n_embd,
            n_ff,
            scales,
            cols,
            col_bytes,
        })
    }

    /// Neuron `i`'s column (the in-memory copy must exist).
    #[inline]
    pub fn col(&self, i: usize) -> &[u8] {
        &self.cols[i * self.col_bytes..(i + 1) * self.col_bytes]
    }

    /// Scales of block `b` (neurons `32b..32b+32`).
    #[inline]
    pub fn block_scales(&self, b: usize) -> &[u16] {
        let n = self.kind.scales_per_row() * self.n_embd;
        &self.scales[b * n..(b + 1) * n]
    }

    /// Block `b`'s scales as bytes (to prefetch them).
    #[inline]
    pub fn block_scale_bytes_at(&self, b: usize) -> &[u8] {
        let s = self.block_scales(b);
        // SAFETY: the u16 slice's memory viewed as bytes: same address, twice the length,
        // alignment 1, and every bit pattern is a valid u8.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), s.len() * 2) }
    }

    /// Bytes of one block's scales.
    pub fn block_scale_bytes(&self) -> usize {
        self.kind.scales_per_row() * self.n_embd * 2
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.scales.len() * 2 + self.cols.len()
    }

    /// Dequantizes neuron `i`'s column (tests and tools: the reference of what the kernels add).
    pub fn dequantize_col(&self, col: &[u8], i: usize, out: &mut [f32]) {
        let s = self.block_scales(i / BLOCK);
        for (r, o) in out.iter_mut().enumerate().take(self.n_embd) {
            let d = f16::from_bits(s[r]).to_f32();
            *o = match self.kind {
                ColKind::Nib4 => {
                    let m = f16::from_bits(s[self.n_embd + r]).to_f32();
                    d * crate::quant::nibble_at(col, r) as f32 + m
                }
                ColKind::I8 => d * col[r] as i8 as f32,
            };
        }
    }
}
