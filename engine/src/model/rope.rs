//! Rotary position embeddings, computed as ggml does (f32, angle advanced by repeated
//! multiplication) so that results track llama.cpp to the last bits that matter.

use crate::model::config::{RopeConfig, RopeStyle};

/// Precomputed per-pair constants of a model's RoPE.
#[derive(Debug, Clone)]
pub struct Rope {
    cfg: RopeConfig,
    /// Frequency divisor per rotated pair (1.0 without `rope_freqs`).
    freq_factors: Vec<f32>,
    /// YaRN correction range [low, high] in pair-index units.
    corr_dims: [f32; 2],
}

fn yarn_corr_dim(n_dims: usize, n_ctx_orig: usize, n_rot: f32, base: f32) -> f32 {
    n_dims as f32 * (n_ctx_orig as f32 / (n_rot * 2.0 * std::f32::consts::PI)).ln()
        / (2.0 * base.ln())
}

fn yarn_ramp(low: f32, high: f32, i0: usize) -> f32 {
    let y = ((i0 / 2) as f32 - low) / (high - low).max(0.001);
    1.0 - y.clamp(0.0, 1.0)
}

impl Rope {
    pub fn new(cfg: &RopeConfig, freq_factors: Option<&[f32]>) -> Self {
        let n = cfg.n_rot;
        let start = yarn_corr_dim(n, cfg.n_ctx_orig, cfg.beta_fast, cfg.freq_base).floor();
        let end = yarn_corr_dim(n, cfg.n_ctx_orig, cfg.beta_slow, cfg.freq_base).ceil();
        Rope {
            cfg: cfg.clone(),
            freq_factors: freq_factors
                .map(|f| f.to_vec())
                .unwrap_or_else(|| vec![1.0; n / 2]),
            corr_dims: [start.max(0.0), end.min(n as f32 - 1.0)],
        }
    }

    /// Fills `cs` (length n_rot) with interleaved (cos, sin) for position `pos`.
    pub fn cos_sin(&self, pos: usize, cs: &mut [f32]) {
        let c = &self.cfg;
        let theta_scale = c.freq_base.powf(-2.0 / c.n_rot as f32);
        let mut theta_extrap = pos as f32;
        for i0 in (0..c.n_rot).step_by(2) {
            let te = theta_extrap / self.freq_factors[i0 / 2];
            let theta_interp = c.freq_scale * te;
            let mut theta = theta_interp;
            let mut mscale = c.attn_factor;
            if c.ext_factor != 0.0 {
                let mix = yarn_ramp(self.corr_dims[0], self.corr_dims[1], i0) * c.ext_factor;
                theta = theta_interp * (1.0 - mix) + te * mix;
                mscale *= 1.0 + 0.1 * (1.0 / c.freq_scale).ln();
            }
            cs[i0] = theta.cos() * mscale;
            cs[i0 + 1] = theta.sin() * mscale;
            theta_extrap *= theta_scale;
        }
    }

    /// Rotates every head of `x` (heads of width `head_dim`, laid out back to back) in place,
    /// using the (cos, sin) table from [`Rope::cos_sin`].
    pub fn apply(&self, x: &mut [f32], head_dim: usize, cs: &[f32]) {
        let n = self.cfg.n_rot;
        for head in x.chunks_exact_mut(head_dim) {
            match self.cfg.style {
                RopeStyle::Normal => {
                    for i0 in (0..n).step_by(2) {
                        let (c, s) = (cs[i0], cs[i0 + 1]);
                        let (x0, x1) = (head[i0], head[i0 + 1]);
                        head[i0] = x0 * c - x1 * s;
                        head[i0 + 1] = x0 * s + x1 * c;
                    }
                }
                RopeStyle::Neox => {
                    let half = n / 2;
                    for i in 0..half {
                        let (c, s) = (cs[2 * i], cs[2 * i + 1]);
                        let (x0, x1) = (head[i], head[i + half]);
                        head[i] = x0 * c - x1 * s;
                        head[i + half] = x0 * s + x1 * c;
                    }
                }
            }
        }
    }

    pub fn n_rot(&self) -> usize {
        self.cfg.n_rot
    }
}
