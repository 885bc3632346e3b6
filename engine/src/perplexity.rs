//! Perplexity as llama.cpp's `llama-perplexity` computes it: the text is tokenized once, cut into
//! non-overlapping chunks of `n_ctx` tokens (the tail dropped), each chunk evaluated from an empty
//! cache without BOS, and the second half of each chunk scored.

use crate::error::{Error, Result};
use crate::model::{Model, Session, SessionOptions};
use crate::ops::Precision;
use crate::sparse::{ProfileData, SparsityConfig};

use std::sync::Arc;

/// Batch size under a memory budget.
const BUDGET_BATCH: usize = 32;

/// Result of a perplexity run.
#[derive(Debug, Clone)]
pub struct Perplexity {
    pub ppl: f64,
    pub chunks: usize,
    pub n_ctx: usize,
    /// Running perplexity after each chunk (llama.cpp prints these as `[1]27.11,[2]29.36...`).
    pub running: Vec<f64>,
    pub scored_tokens: usize,
    /// What the sparse FFN did over every evaluated position (None when dense).
    pub sparse: Option<crate::sparse::SparseStats>,
}

/// Computes perplexity of `tokens` with contexts of `n_ctx` tokens; with `sparsity`, every
/// position's FFN runs sparse.
#[allow(clippy::too_many_arguments)]
pub fn perplexity(
    model: &Arc<Model>,
    tokens: &[u32],
    n_ctx: usize,
    n_threads: usize,
    precision: Precision,
    sparsity: Option<(Arc<ProfileData>, SparsityConfig)>,
    mem_budget: Option<u64>,
    mut progress: impl FnMut(usize, usize, f64),
) -> Result<Perplexity> {
    if n_ctx < 4 {
        return Err(Error::Invalid(format!(
            "context {n_ctx} is too small for perplexity"
        )));
    }
    if n_ctx > model.config.n_ctx_train {
        return Err(Error::Invalid(format!(
            "context {n_ctx} exceeds the model's trained length {}",
            model.config.n_ctx_train
        )));
    }
    if tokens.len() < 2 * n_ctx {
        return Err(Error::Invalid(format!(
            "the text has {} tokens: perplexity with a context of {n_ctx} needs at least {}",
            tokens.len(),
            2 * n_ctx
        )));
    }
    // Under a budget, logits are taken a few rows at a time (a row is n_vocab floats: 192 KiB for
    // a 49k vocabulary) and batches are small, so buffers stay a small part of the budget.
    let n_batch = if mem_budget.is_some() {
        n_ctx.min(BUDGET_BATCH)
    } else {
        n_ctx.min(512)
    };
    let mut session = Session::new(
        model.clone(),
        &SessionOptions {
            n_ctx,
            n_batch,
            n_threads,
            precision,
        },
    )?;
    if let Some((profile, config)) = sparsity {
        // Score every token with the sparse FFN, as decode would compute it.
        session.set_sparsity(Some(profile), config)?;
        session.set_sparse_prefill(true);
    }
    session.set_mem_budget(mem_budget)?;
    let n_vocab = model.config.n_vocab;
    let chunks = tokens.len() / n_ctx;
    let first = n_ctx / 2;
    let mut nll = 0f64;
    let mut count = 0usize;
    let mut running = Vec::with_capacity(chunks);
    for c in 0..chunks {
        let chunk = &tokens[c * n_ctx..(c + 1) * n_ctx];
        session.clear();
        session.eval(&chunk[..first], first)?;
        // The rest in batches, scoring each batch's logits (positions first .. n_ctx-2).
        let mut at = first;
        while at < n_ctx - 1 {
            let end = (at + n_batch).min(n_ctx);
            let logits = session.eval(&chunk[at..end], 0)?;
            for (i, row) in logits.chunks_exact(n_vocab).enumerate() {
                let pos = at + i;
                if pos + 1 < n_ctx {
                    nll += log_softmax_neg(row, chunk[pos + 1] as usize);
                    count += 1;
                }
            }
            at = end;
        }
        let ppl = (nll / count as f64).exp();
        running.push(ppl);
        progress(c + 1, chunks, ppl);
    }
    Ok(Perplexity {
        ppl: (nll / count as f64).exp(),
        chunks,
        n_ctx,
        running,
        scored_tokens: count,
        sparse: session.sparse().map(|s| s.stats),
    })
}

/// `-log softmax(row)[target]`, in f64.
fn log_softmax_neg(row: &[f32], target: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
    (sum.ln() + max) - row[target] as f64
}
