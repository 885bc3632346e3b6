//! `sparsetop run`: one prompt in, streamed text out (or one JSON object with `--json`).

use super::common;
use crate::cli::RunArgs;
use crate::output;
use anyhow::{bail, Context};
use sparsetop_engine::chat::ChatMessage;
use sparsetop_engine::generate::{generate, StopReason};
use sparsetop_engine::sampler::Sampler;
use std::sync::atomic::AtomicBool;

pub fn run(a: &RunArgs) -> anyhow::Result<()> {
    let text = match (&a.prompt, &a.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read prompt file {}", f.display()))?,
        (None, None) => bail!("no prompt: give one with -p TEXT or -f FILE"),
    };
    let params = common::sampler_params(&a.sampling)?;
    let path = common::model_file(&a.engine)?;
    let model = common::load_model_for_engine(&path, &a.engine)?;
    let tok = &model.tokenizer;
    let prompt_ids = if a.chat {
        let mut messages = Vec::new();
        if let Some(s) = &a.system {
            messages.push(ChatMessage {
                role: "system".into(),
                content: s.clone(),
            });
        }
        messages.push(ChatMessage {
            role: "user".into(),
            content: text.clone(),
        });
        let rendered = model.chat_template.render(&messages, true)?;
        tok.encode(&rendered, true, true)?
    } else {
        tok.encode(&text, true, true)?
    };
    let mut session = common::new_session(&model, &a.engine)?;
    common::apply_sparsity(&mut session, &path, &a.engine.sparsity, a.engine.threads)?;
    common::apply_budget(&mut session, &a.engine.budget)?;
    let mut sampler = Sampler::new(params, model.config.n_vocab);
    let stop = AtomicBool::new(false);
    let mut write_err = None;
    let gen = generate(
        &mut session,
        &mut sampler,
        &prompt_ids,
        common::n_predict(a.n_predict),
        &stop,
        |ev| {
            if !a.json && write_err.is_none() {
                if let Err(e) = output::stream(ev.text) {
                    write_err = Some(e);
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        },
    )?;
    if let Some(e) = write_err {
        return Err(e);
    }
    if a.json {
        let obj = serde_json::json!({
            "prompt_ids": gen.prompt_ids,
            "generated_ids": gen.generated_ids,
            "text": gen.text,
            "prompt_tok_s": gen.prompt_tok_s(),
            "gen_tok_s": gen.gen_tok_s(),
            "stop": stop_name(gen.stop),
        });
        output::stream(&format!("{obj}\n"))?;
    } else {
        output::stream("\n")?;
        diag!(
            "prompt: {} tokens, {:.1} tok/s | generated: {} tokens, {:.1} tok/s | stop: {}",
            gen.prompt_ids.len(),
            gen.prompt_tok_s(),
            gen.generated_ids.len(),
            gen.gen_tok_s(),
            stop_name(gen.stop)
        );
    }
    Ok(())
}

/// How a stop reason is named in output.
pub fn stop_name(r: StopReason) -> &'static str {
    match r {
        StopReason::EndOfGeneration => "eog",
        StopReason::Limit => "limit",
        StopReason::ContextFull => "context_full",
        StopReason::Cancelled => "cancelled",
    }
}
