//! Hyper-parameters of a model, read from GGUF metadata and checked for consistency.
//!
//! Everything that shapes the forward pass comes from here, never from constants, so other models of
//! the supported families run without code changes.

use crate::error::{Error, Result};
use crate::gguf::Metadata;

/// Architectures the engine runs, by their `general.architecture` name.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "qwen2"];

/// A supported architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama family (SmolLM2, TinyLlama, Llama 2/3, Mistral): normal RoPE, optional untied output.
    Llama,
    /// Qwen2: Q/K/V biases and NeoX-style RoPE.
    Qwen2,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// How RoPE pairs dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (2i, 2i+1): llama.cpp's "normal" mode.
    Normal,
    /// Halves (i, i + n/2): GPT-NeoX style, used by Qwen2.
    Neox,
}

/// RoPE context-extension method (`<arch>.rope.scaling.type`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    None,
    Linear,
    Yarn,
}

/// Rotary position embedding parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeConfig {
    pub style: RopeStyle,
    /// Number of leading head dimensions that are rotated.
    pub n_rot: usize,
    pub freq_base: f32,
    /// 1 / scaling factor (1.0 without scaling).
    pub freq_scale: f32,
    pub scaling: RopeScaling,
    /// Context length the model was trained with before extension (YaRN's `n_ctx_orig`).
    pub n_ctx_orig: usize,
    /// YaRN extrapolation mix (1.0 for YaRN, 0.0 otherwise).
    pub ext_factor: f32,
    /// Attention magnitude factor.
    pub attn_factor: f32,
    pub beta_fast: f32,
    pub beta_slow: f32,
}

/// The hyper-parameters the forward pass needs.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub arch: Arch,
    pub name: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Per-head width of keys and queries.
    pub head_dim_k: usize,
    /// Per-head width of values.
    pub head_dim_v: usize,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope: RopeConfig,
}

/// Upper bounds that no real model of these families exceeds; larger values mean a corrupt or
/// hostile file, and rejecting them keeps buffer sizes far from overflow.
const MAX_DIM: u64 = 1 << 20;
const MAX_LAYERS: u64 = 1024;
const MAX_HEADS: u64 = 4096;
const MAX_CTX: u64 = 1 << 24;

impl ModelConfig {
    /// Reads and validates the configuration; `n_vocab` comes from the tokenizer or embedding when
    /// the metadata lacks `<arch>.vocab_size`.
    pub fn from_metadata(md: &Metadata, n_vocab_fallback: usize) -> Result<Self> {
        let arch_name = md.req_str("general.architecture")?;
        let arch = match arch_name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            other => {
                return Err(Error::Model(format!(
                    "unsupported architecture '{other}' (supported: {})",
                    SUPPORTED_ARCHITECTURES.join(", ")
                )))
            }
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let bounded = |k: &str, v: u64, max: u64| -> Result<usize> {
            if v == 0 || v > max {
                return Err(Error::Model(format!(
                    "{k} = {v} is out of range (1..={max})"
                )));
            }
            Ok(v as usize)
        };
        let req = |k: &str, max: u64| -> Result<usize> {
            let k = key(k);
            bounded(&k, md.req_u64(&k)?, max)
        };
        let n_layer = req("block_count", MAX_LAYERS)?;
        let n_embd = req("embedding_length", MAX_DIM)?;
        let n_ff = req("feed_forward_length", MAX_DIM)?;
        let n_head = req("attention.head_count", MAX_HEADS)?;
        let n_head_kv = match md.u64(&key("attention.head_count_kv"))? {
            Some(v) => bounded(&key("attention.head_count_kv"), v, MAX_HEADS)?,
            None => n_head,
        };
        if n_head % n_head_kv != 0 {
            return Err(Error::Model(format!(
                "head_count {n_head} is not a multiple of head_count_kv {n_head_kv}"
            )));
        }
        if n_embd % n_head != 0 && md.get(&key("attention.key_length")).is_none() {
            return Err(Error::Model(format!(
                "embedding_length {n_embd} is not a multiple of head_count {n_head}"
            )));
        }
        let head_dim_k = match md.u64(&key("attention.key_length"))? {
            Some(v) => bounded(&key("attention.key_length"), v, MAX_DIM)?,
            None => n_embd / n_head,
        };
        let head_dim_v = match md.u64(&key("attention.value_length"))? {
            Some(v) => bounded(&key("attention.value_length"), v, MAX_DIM)?,
            None => n_embd / n_head,
        };
        let n_ctx_train = match md.u64(&key("context_length"))? {
            Some(v) => bounded(&key("context_length"), v, MAX_CTX)?,
            None => 2048,
        };
        let n_vocab = match md.u64(&key("vocab_size"))? {
            Some(v) => bounded(&key("vocab_size"), v, 1 << 24)?,
            None => n_vocab_fallback,
        };
        let rms_eps = md
            .f64(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5) as f32;
        if !(rms_eps > 0.0 && rms_eps < 1.0) {
            return Err(Error::Model(format!(
                "rms epsilon {rms_eps} is out of range"
            )));
        }

        let n_rot = match md.u64(&key("rope.dimension_count"))? {
            Some(v) => bounded(&key("rope.dimension_count"), v, MAX_DIM)?,
            None => head_dim_k,
        };
        if n_rot > head_dim_k || n_rot % 2 != 0 {
            return Err(Error::Model(format!(
                "rope.dimension_count {n_rot} must be even and at most the head size {head_dim_k}"
            )));
        }
        let freq_base = md.f64(&key("rope.freq_base"))?.unwrap_or(10000.0) as f32;
        if !(freq_base.is_finite() && freq_base > 1.0) {
            return Err(Error::Model(format!(
                "rope.freq_base {freq_base} is out of range"
            )));
        }
        let scaling = match md.str(&key("rope.scaling.type"))? {
            None | Some("none") => RopeScaling::None,
            Some("linear") => RopeScaling::Linear,
            Some("yarn") => RopeScaling::Yarn,
            Some(other) => {
                return Err(Error::Model(format!(
                    "unsupported rope.scaling.type '{other}' (supported: none, linear, yarn)"
                )))
            }
        };
        // Older files carry `rope.scale_linear`; newer ones `rope.scaling.factor`.
        let factor = md
            .f64(&key("rope.scaling.factor"))?
            .or(md.f64(&key("rope.scale_linear"))?)
            .unwrap_or(1.0) as f32;
        // As llama.cpp: the factor applies whatever the declared type; 0 means "no scaling".
        let freq_scale = if factor == 0.0 {
            1.0
        } else if factor > 0.0 && factor.is_finite() {
            1.0 / factor
        } else {
            return Err(Error::Model(format!(
                "rope scaling factor {factor} is out of range"
            )));
        };
        let n_ctx_orig = match md.u64(&key("rope.scaling.original_context_length"))? {
            Some(v) => bounded(&key("rope.scaling.original_context_length"), v, MAX_CTX)?,
            None => n_ctx_train,
        };
        let attn_factor = md.f64(&key("rope.scaling.attn_factor"))?.unwrap_or(1.0) as f32;
        let rope = RopeConfig {
            style: match arch {
                Arch::Llama => RopeStyle::Normal,
                Arch::Qwen2 => RopeStyle::Neox,
            },
            n_rot,
            freq_base,
            freq_scale,
            scaling,
            n_ctx_orig,
            ext_factor: if scaling == RopeScaling::Yarn {
                1.0
            } else {
                0.0
            },
            attn_factor,
            beta_fast: md.f64(&key("rope.scaling.yarn_beta_fast"))?.unwrap_or(32.0) as f32,
            beta_slow: md.f64(&key("rope.scaling.yarn_beta_slow"))?.unwrap_or(1.0) as f32,
        };
        Ok(ModelConfig {
            arch,
            name: md.str("general.name")?.unwrap_or("").to_string(),
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            n_vocab,
            n_ctx_train,
            rms_eps,
            rope,
        })
    }

    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim_k
    }

    /// Width of all key heads together (one row of the K cache).
    pub fn k_dim(&self) -> usize {
        self.n_head_kv * self.head_dim_k
    }

    /// Width of all value heads together (one row of the V cache).
    pub fn v_dim(&self) -> usize {
        self.n_head_kv * self.head_dim_v
    }

    /// Query heads sharing one key/value head (grouped-query attention).
    pub fn gqa_group(&self) -> usize {
        self.n_head / self.n_head_kv
    }
}
