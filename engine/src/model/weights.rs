//! The model's tensors, located in the memory map and checked against the configuration.
//!
//! Weights are never copied: a [`Matrix`] records where its rows are in the map and which kernels
//! compute with its type. Every shape is checked here, once, so the forward pass can index freely.

use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::gguf::GgufFile;
use crate::model::config::{Arch, ModelConfig};
use crate::quant::{self, TypeKernels};

/// A 2-D weight matrix `rows x cols` (ggml `ne = [cols, rows]`): one row per output.
#[derive(Clone, Copy)]
pub struct Matrix {
    pub dtype: GgmlType,
    pub kernels: &'static TypeKernels,
    pub rows: usize,
    pub cols: usize,
    /// Byte offset of row 0 in the file.
    pub offset: usize,
    pub row_bytes: usize,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Matrix({} {}x{})", self.dtype, self.rows, self.cols)
    }
}

impl Matrix {
    /// Total bytes of the matrix.
    pub fn bytes(&self) -> usize {
        self.rows * self.row_bytes
    }

    /// The bytes of rows `r0..r1` out of the whole file image.
    #[inline]
    pub fn rows_data<'a>(&self, file: &'a [u8], r0: usize, r1: usize) -> &'a [u8] {
        &file[self.offset + r0 * self.row_bytes..self.offset + r1 * self.row_bytes]
    }
}

/// One transformer block.
#[derive(Debug)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub wq: Matrix,
    pub wk: Matrix,
    pub wv: Matrix,
    pub wo: Matrix,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub gate: Matrix,
    pub up: Matrix,
    pub down: Matrix,
}

/// All weights of a model.
#[derive(Debug)]
pub struct Weights {
    pub token_embd: Matrix,
    pub output_norm: Vec<f32>,
    /// The LM head: `output.weight`, or the embedding when tied.
    pub output: Matrix,
    pub tied_output: bool,
    pub layers: Vec<LayerWeights>,
    /// Per-pair RoPE frequency divisors (`rope_freqs.weight`, Llama 3.1 style), if present.
    pub rope_freqs: Option<Vec<f32>>,
}

fn matrix(file: &GgufFile, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
    let t = file.require(name)?;
    let info = t.info;
    let dims: Vec<u64> = info.dims.clone();
    let ok = match dims.as_slice() {
        [c, r] => *c as usize == cols && *r as usize == rows,
        [c, r, 1] | [c, r, 1, 1] => *c as usize == cols && *r as usize == rows,
        _ => false,
    };
    if !ok {
        return Err(Error::Model(format!(
            "tensor '{name}' has shape {dims:?}, expected [{cols}, {rows}]"
        )));
    }
    let kernels = quant::kernels(info.dtype)
        .map_err(|_| Error::UnsupportedType(format!("{} (tensor '{name}')", info.dtype)))?;
    Ok(Matrix {
        dtype: info.dtype,
        kernels,
        rows,
        cols,
        offset: info.offset,
        row_bytes: info.size / rows,
    })
}

/// Reads a 1-D tensor of any supported type into f32 (norm weights, biases).
fn vector(file: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>> {
    let t = file.require(name)?;
    if t.info.n_elements() != len as u64 || t.info.dims.iter().skip(1).any(|&d| d != 1) {
        return Err(Error::Model(format!(
            "tensor '{name}' has shape {:?}, expected [{len}]",
            t.info.dims
        )));
    }
    let mut v = vec![0f32; len];
    quant::dequantize_row(t.info.dtype, t.data, &mut v)
        .map_err(|_| Error::UnsupportedType(format!("{} (tensor '{name}')", t.info.dtype)))?;
    Ok(v)
}

fn opt_vector(file: &GgufFile, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
    if file.tensor_info(name).is_some() {
        vector(file, name, len).map(Some)
    } else {
        Ok(None)
    }
}

impl Weights {
    /// Locates and validates every tensor the architecture needs.
    pub fn load(file: &GgufFile, cfg: &ModelConfig) -> Result<Self> {
        let e = cfg.n_embd;
        let token_embd = matrix(file, "token_embd.weight", cfg.n_vocab, e)?;
        let output_norm = vector(file, "output_norm.weight", e)?;
        let (output, tied_output) = if file.tensor_info("output.weight").is_some() {
            (matrix(file, "output.weight", cfg.n_vocab, e)?, false)
        } else {
            (token_embd, true)
        };
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let biased = cfg.arch == Arch::Qwen2;
            let bias = |s: &str, len: usize| -> Result<Option<Vec<f32>>> {
                if biased {
                    opt_vector(file, &n(s), len)
                } else {
                    Ok(None)
                }
            };
            layers.push(LayerWeights {
                attn_norm: vector(file, &n("attn_norm.weight"), e)?,
                wq: matrix(file, &n("attn_q.weight"), cfg.q_dim(), e)?,
                wk: matrix(file, &n("attn_k.weight"), cfg.k_dim(), e)?,
                wv: matrix(file, &n("attn_v.weight"), cfg.v_dim(), e)?,
                wo: matrix(
                    file,
                    &n("attn_output.weight"),
                    e,
                    cfg.n_head * cfg.head_dim_v,
                )?,
                bq: bias("attn_q.bias", cfg.q_dim())?,
                bk: bias("attn_k.bias", cfg.k_dim())?,
                bv: bias("attn_v.bias", cfg.v_dim())?,
                ffn_norm: vector(file, &n("ffn_norm.weight"), e)?,
                gate: matrix(file, &n("ffn_gate.weight"), cfg.n_ff, e)?,
                up: matrix(file, &n("ffn_up.weight"), cfg.n_ff, e)?,
                down: matrix(file, &n("ffn_down.weight"), e, cfg.n_ff)?,
            });
        }
        let rope_freqs = opt_vector(file, "rope_freqs.weight", cfg.rope.n_rot / 2)?;
        Ok(Weights {
            token_embd,
            output_norm,
            output,
            tied_output,
            layers,
            rope_freqs,
        })
    }

    /// Bytes of the FFN matrices (gate, up, down) of all layers: what a dense token reads of them.
    pub fn ffn_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.gate.bytes() + l.up.bytes() + l.down.bytes())
            .sum()
    }

    /// Bytes of all matrices (the weights streamed per token).
    pub fn matrix_bytes(&self) -> usize {
        let per_layer: usize = self
            .layers
            .iter()
            .map(|l| {
                [l.wq, l.wk, l.wv, l.wo, l.gate, l.up, l.down]
                    .iter()
                    .map(Matrix::bytes)
                    .sum::<usize>()
            })
            .sum();
        per_layer + self.output.bytes()
    }
}
