//! The generation loop shared by the CLI and the TUI: evaluate the prompt (reusing whatever prefix
//! is already in the KV cache), then sample, evaluate and stream one token at a time until an
//! end-of-generation token, the token limit, the context end, or a stop request.

use crate::error::{Error, Result};
use crate::model::Session;
use crate::sampler::Sampler;
use crate::tokenizer::StreamDecoder;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// `n_predict` tokens were generated.
    Limit,
    /// The context window is full.
    ContextFull,
    /// The caller asked to stop.
    Cancelled,
}

/// Outcome and timings of one generation.
#[derive(Debug, Clone)]
pub struct Generation {
    pub prompt_ids: Vec<u32>,
    /// Prompt tokens actually evaluated (the rest came from the cache).
    pub prompt_evaluated: usize,
    pub generated_ids: Vec<u32>,
    pub text: String,
    pub prompt_time: Duration,
    pub gen_time: Duration,
    pub stop: StopReason,
}

impl Generation {
    /// Prompt evaluation speed in tokens per second.
    pub fn prompt_tok_s(&self) -> f64 {
        rate(self.prompt_evaluated, self.prompt_time)
    }

    /// Decode speed in tokens per second (the first token's time counts toward the prompt).
    pub fn gen_tok_s(&self) -> f64 {
        rate(self.generated_ids.len().saturating_sub(1), self.gen_time)
    }
}

fn rate(n: usize, t: Duration) -> f64 {
    if t.is_zero() {
        0.0
    } else {
        n as f64 / t.as_secs_f64()
    }
}

/// What the token callback sees.
pub struct TokenEvent<'a> {
    pub id: u32,
    /// Text completed by this token (may be empty while a UTF-8 character is incomplete).
    pub text: &'a str,
    /// Time spent evaluating the token that produced this one's logits.
    pub eval_time: Duration,
}

/// Generates after `prompt`. `n_predict` of `None` runs to an end-of-generation token or the end
/// of the context. The end-of-generation token itself is neither returned as text nor fed back.
pub fn generate(
    session: &mut Session,
    sampler: &mut Sampler,
    prompt: &[u32],
    n_predict: Option<usize>,
    stop: &AtomicBool,
    mut on_token: impl FnMut(&TokenEvent<'_>),
) -> Result<Generation> {
    let n_ctx = session.n_ctx();
    if prompt.is_empty() {
        return Err(Error::Invalid("the prompt is empty".into()));
    }
    if prompt.len() >= n_ctx {
        return Err(Error::Context(format!(
            "the prompt has {} tokens but the context holds {n_ctx} (leave room to generate: use -c to enlarge it, up to the model's {})",
            prompt.len(),
            session.model().config.n_ctx_train
        )));
    }
    // Reuse the cached prefix; always evaluate at least the last prompt token to get logits.
    let common = session
        .tokens()
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count()
        .min(prompt.len() - 1);
    session.truncate(common);
    for &t in prompt {
        sampler.accept(t);
    }
    let model = session.model().clone();
    let tok = &model.tokenizer;
    let t0 = Instant::now();
    let last = prompt.len() - common - 1;
    let mut logits_row = session.eval(&prompt[common..], last)?.to_vec();
    let prompt_time = t0.elapsed();

    let mut out = Generation {
        prompt_ids: prompt.to_vec(),
        prompt_evaluated: prompt.len() - common,
        generated_ids: Vec::new(),
        text: String::new(),
        prompt_time,
        gen_time: Duration::ZERO,
        stop: StopReason::Limit,
    };
    let mut decoder = StreamDecoder::new();
    let t_gen = Instant::now();
    let mut eval_time = prompt_time;
    loop {
        if stop.load(Ordering::Relaxed) {
            out.stop = StopReason::Cancelled;
            break;
        }
        if n_predict.is_some_and(|n| out.generated_ids.len() >= n) {
            out.stop = StopReason::Limit;
            break;
        }
        let id = sampler.sample(&logits_row);
        if tok.is_eog(id) {
            out.stop = StopReason::EndOfGeneration;
            break;
        }
        sampler.accept(id);
        out.generated_ids.push(id);
        let piece = decoder.push(tok, id);
        out.text.push_str(&piece);
        on_token(&TokenEvent {
            id,
            text: &piece,
            eval_time,
        });
        if n_predict.is_some_and(|n| out.generated_ids.len() >= n) {
            out.stop = StopReason::Limit;
            break;
        }
        // One slot is kept free at the end of the context.
        if session.tokens().len() + 1 >= n_ctx {
            out.stop = StopReason::ContextFull;
            break;
        }
        let te = Instant::now();
        let l = session.eval(&[id], 0)?;
        logits_row.copy_from_slice(l);
        eval_time = te.elapsed();
    }
    let rest = decoder.flush();
    if !rest.is_empty() {
        out.text.push_str(&rest);
        on_token(&TokenEvent {
            id: *out.generated_ids.last().unwrap_or(&0),
            text: &rest,
            eval_time: Duration::ZERO,
        });
    }
    out.gen_time = t_gen.elapsed();
    Ok(out)
}
