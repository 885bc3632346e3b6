//! `sparsetop chat`: a line-mode chat on stdin/stdout. Each answer streams as it is generated;
//! `/clear` starts over, `/exit` (or Ctrl+D) leaves.

use super::common;
use crate::cli::ChatArgs;
use crate::output;
use sparsetop_engine::conversation::Conversation;
use sparsetop_engine::generate::generate;
use sparsetop_engine::sampler::Sampler;
use std::io::{BufRead, IsTerminal};
use std::sync::atomic::AtomicBool;

pub fn run(a: &ChatArgs) -> anyhow::Result<()> {
    let params = common::sampler_params(&a.sampling)?;
    let path = common::model_file(&a.engine)?;
    let model = common::load_model_for_engine(&path, &a.engine)?;
    let mut session = common::new_session(&model, &a.engine)?;
    common::apply_sparsity(&mut session, &path, &a.engine.sparsity, a.engine.threads)?;
    common::apply_budget(&mut session, &a.engine.budget)?;
    let mut sampler = Sampler::new(params, model.config.n_vocab);
    let mut conv = Conversation::new(a.system.clone());
    let n_ctx = session.n_ctx();
    // Keep a quarter of the context (at most 1024 tokens) free for each answer.
    let reserve = (n_ctx / 4).min(1024);
    let interactive = std::io::stdin().is_terminal();
    diag!(
        "sparsetop chat: {} ({} layers, context {n_ctx}). Type a message and press Enter; /clear starts over, /exit or Ctrl+D quits.",
        if model.config.name.is_empty() { "model" } else { &model.config.name },
        model.config.n_layer
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let stop = AtomicBool::new(false);
    loop {
        if interactive {
            crate::output::diag_raw("> ");
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let msg = line.trim();
        match msg {
            "" => continue,
            "/exit" | "/quit" => break,
            "/clear" => {
                conv.messages.clear();
                session.clear();
                sampler.reset();
                diag!("(conversation cleared)");
                continue;
            }
            _ => {}
        }
        conv.push("user", msg);
        let prompt = match conv.prompt(&model, n_ctx, reserve) {
            Ok(p) => p,
            Err(e) => {
                conv.messages.pop();
                diag!("sparsetop: {e}");
                continue;
            }
        };
        if prompt.dropped > 0 {
            diag!(
                "(context full: dropped the {} oldest messages)",
                prompt.dropped
            );
        }
        sampler.reset();
        let gen = generate(
            &mut session,
            &mut sampler,
            &prompt.ids,
            common::n_predict(a.n_predict),
            &stop,
            |ev| {
                let _ = output::stream(ev.text);
            },
        )?;
        output::stream("\n")?;
        diag!(
            "({} tokens, {:.1} tok/s)",
            gen.generated_ids.len(),
            gen.gen_tok_s()
        );
        conv.push("assistant", &gen.text);
    }
    Ok(())
}
