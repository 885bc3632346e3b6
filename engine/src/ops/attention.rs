//! Causal multi-head attention with grouped-query heads over the KV cache.
//!
//! Each (token, head) pair is independent, so pairs are spread over the pool; every thread keeps
//! its own score buffer of `n_ctx` floats, allocated once.

use super::per_thread::{PerThread, SendPtr};
use crate::model::kv_cache::KvRows;
use crate::quant::FloatKernels;
use crate::threadpool::ThreadPool;

/// Shapes for one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    /// Position of the first token of the batch.
    pub pos0: usize,
    pub batch: usize,
}

/// Per-thread buffers: scores and the f16-rounded query (fast mode).
pub struct AttnScratch {
    slots: PerThread<(Vec<f32>, Vec<f32>)>,
}

impl AttnScratch {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.slots
            .bytes_with(|(a, b)| (a.capacity() + b.capacity()) * 4)
    }

    pub fn new(n_threads: usize, n_ctx: usize, head_dim: usize) -> Self {
        AttnScratch {
            slots: PerThread::new(n_threads, || (vec![0f32; n_ctx], vec![0f32; head_dim])),
        }
    }
}

/// `out[b, h] = softmax(q[b,h] · K[..=pos0+b, h/g]ᵀ / √d) · V[..=pos0+b, h/g]`.
///
/// `q` is `batch × n_head·head_dim_k`, `out` is `batch × n_head·head_dim_v`; the cache already holds
/// the batch's own keys and values.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    pool: &ThreadPool,
    fk: &FloatKernels,
    shape: AttnShape,
    q: &[f32],
    k: &KvRows,
    v: &KvRows,
    out: &mut [f32],
    scratch: &AttnScratch,
) {
    let s = shape;
    let (dk, dv) = (s.head_dim_k, s.head_dim_v);
    let group = s.n_head / s.n_head_kv;
    let (kw, vw) = (s.n_head_kv * dk, s.n_head_kv * dv);
    let scale = 1.0 / (dk as f32).sqrt();
    let items = s.batch * s.n_head;
    let outp = SendPtr(out.as_mut_ptr());
    let qdim = s.n_head * dk;
    let odim = s.n_head * dv;
    pool.for_each_chunk(items, &|tid, item| {
        let (b, h) = (item / s.n_head, item % s.n_head);
        let kvh = h / group;
        let n_kv = s.pos0 + b + 1;
        let qh = &q[b * qdim + h * dk..b * qdim + (h + 1) * dk];
        // SAFETY: each item owns its own head slice of the output; the slot is this thread's.
        let o = unsafe { std::slice::from_raw_parts_mut(outp.get().add(b * odim + h * dv), dv) };
        let (scores, qbuf) = unsafe { scratch.slots.get(tid) };
        let scores = &mut scores[..n_kv];
        match k {
            KvRows::F32(kc) => {
                for (j, sc) in scores.iter_mut().enumerate() {
                    let kr = &kc[j * kw + kvh * dk..j * kw + (kvh + 1) * dk];
                    *sc = (fk.dot_f32)(qh, kr) * scale;
                }
            }
            KvRows::F16(kc) => {
                // llama.cpp converts the query to f16 before the product with an f16 cache.
                let qr = &mut qbuf[..dk];
                for (d, &x) in qr.iter_mut().zip(qh) {
                    *d = half::f16::from_f32(x).to_f32();
                }
                for (j, sc) in scores.iter_mut().enumerate() {
                    let kr = &kc[j * kw + kvh * dk..j * kw + (kvh + 1) * dk];
                    *sc = (fk.dot_f32_f16)(qr, kr) * scale;
                }
            }
        }
        softmax(scores);
        o.fill(0.0);
        match v {
            KvRows::F32(vc) => {
                for (j, &p) in scores.iter().enumerate() {
                    super::axpy(o, p, &vc[j * vw + kvh * dv..j * vw + (kvh + 1) * dv]);
                }
            }
            KvRows::F16(vc) => {
                // llama.cpp (no flash attention) computes `V·P` as a matmul of the f16 V cache with
                // the f32 probabilities, which converts them to f16 first (the f16 type's
                // `vec_dot_type`): round them the same way.
                for (j, &p) in scores.iter().enumerate() {
                    let p = half::f16::from_f32(p).to_f32();
                    (fk.axpy_f16)(o, p, &vc[j * vw + kvh * dv..j * vw + (kvh + 1) * dv]);
                }
            }
        }
    });
}

/// In-place softmax, the normaliser summed in f64 as ggml does.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}
