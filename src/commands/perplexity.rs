//! `sparsetop perplexity`: llama-perplexity's measurement on a text file.

use super::common;
use super::ffn_report::FfnReport;
use crate::cli::PerplexityArgs;
use crate::output;
use anyhow::Context;

pub fn run(a: &PerplexityArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let path = common::model_file(&a.engine)?;
    let model = common::load_model_for_engine(&path, &a.engine)?;
    // As llama-perplexity: special tokens allowed (BOS if the model asks), specials not parsed.
    let tokens = model.tokenizer.encode(&text, true, false)?;
    let n_ctx = if a.engine.ctx_size == 0 {
        512
    } else {
        a.engine.ctx_size
    };
    diag!(
        "perplexity: {} tokens, {} chunks of {n_ctx}, precision {:?}",
        tokens.len(),
        tokens.len() / n_ctx,
        a.engine.precision
    );
    let sp = &a.engine.sparsity;
    let sparsity = if sp.sparsity > 0.0 || sp.predictor {
        let profile = common::load_profile(&model, &path, sp.profile.as_deref(), a.engine.threads)?;
        diag!(
            "sparse FFN at every position: sparsity {}, predictor {}",
            sp.sparsity,
            if sp.predictor { "on" } else { "off" }
        );
        Some((
            profile,
            sparsetop_engine::sparse::SparsityConfig {
                level: sp.sparsity,
                predictor: sp.predictor,
            },
        ))
    } else {
        None
    };
    let t0 = std::time::Instant::now();
    let r = sparsetop_engine::perplexity::perplexity(
        &model,
        &tokens,
        n_ctx,
        a.engine.threads,
        a.engine.precision,
        sparsity,
        a.engine.budget.mem_budget,
        |i, _n, ppl| {
            crate::output::diag_raw(&format!("[{i}]{ppl:.4},"));
        },
    )?;
    diag!();
    diag!(
        "{} tokens scored in {:.1} s",
        r.scored_tokens,
        t0.elapsed().as_secs_f64()
    );
    let ffn = FfnReport::from_stats(&model, r.sparse.as_ref());
    diag!("FFN: {}", ffn.line());
    if a.json {
        let obj = serde_json::json!({"ppl": r.ppl, "chunks": r.chunks, "n_ctx": r.n_ctx, "ffn": ffn.json()});
        output::stream(&format!("{obj}\n"))
    } else {
        output::stream(&format!(
            "PPL = {:.4} ({} chunks of {})\n",
            r.ppl, r.chunks, r.n_ctx
        ))
    }
}
