//! A neuron-major copy of `ffn_down`: row `i` holds neuron `i`'s output column, so the sparse FFN
//! can add `a_i · down[:, i]` for just the active neurons while streaming contiguous memory.
//!
//! A column of a quantized matrix is not a block of it, so the copy is re-quantized as Q8_0
//! (8.5 bits per weight: finer than every source type except F16/F32, which it rounds slightly).

use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::model::weights::Matrix;
use crate::quant;

/// Q8_0 rows, one per FFN neuron.
pub struct DownT {
    pub data: Vec<u8>,
    pub row_bytes: usize,
    pub n_embd: usize,
}

impl DownT {
    /// Transposes and re-quantizes `down` (`n_embd × n_ff`) from the mapped file.
    pub fn build(file: &[u8], down: &Matrix) -> Result<Self> {
        let (n_embd, n_ff) = (down.rows, down.cols);
        let row_bytes = GgmlType::Q8_0.row_bytes(n_embd as u64).ok_or_else(|| {
            Error::Model(format!(
                "sparse decode needs an embedding width that is a multiple of 32 (this model has {n_embd})"
            ))
        })? as usize;
        let mut dense = vec![0f32; n_ff];
        let mut cols = vec![0f32; n_embd * n_ff];
        for r in 0..n_embd {
            (down.kernels.dequantize)(down.rows_data(file, r, r + 1), &mut dense);
            for (i, &v) in dense.iter().enumerate() {
                cols[i * n_embd + r] = v;
            }
        }
        let mut data = vec![0u8; n_ff * row_bytes];
        for (i, dst) in data.chunks_exact_mut(row_bytes).enumerate() {
            quant::quantize_activations(GgmlType::Q8_0, &cols[i * n_embd..(i + 1) * n_embd], dst);
        }
        Ok(DownT {
            data,
            row_bytes,
            n_embd,
        })
    }

    /// The same rows in another order: row `k` of the result is row `order[k]` of this one (the
    /// sparse FFN keeps them hot-first, so the columns of often-active neurons sit together).
    pub fn permuted(&self, order: &[u32]) -> DownT {
        let mut data = Vec::with_capacity(self.data.len());
        for &i in order {
            data.extend_from_slice(self.row(i as usize));
        }
        DownT {
            data,
            row_bytes: self.row_bytes,
            n_embd: self.n_embd,
        }
    }

    /// Neuron `i`'s column.
    #[inline]
    pub fn row(&self, i: usize) -> &[u8] {
        &self.data[i * self.row_bytes..(i + 1) * self.row_bytes]
    }
}

/// `y += alpha · dequant(row)` for a Q8_0 row, with the active tier's kernel (see
/// [`quant::FloatKernels::axpy_q8_0`]). A convenience: it looks the tier up on every call, so hot
/// loops call the kernel of a [`quant::FloatKernels`] table they hold instead.
pub fn axpy_q8_0(y: &mut [f32], alpha: f32, row: &[u8]) {
    (quant::float_kernels().axpy_q8_0)(y, alpha, row)
}
