//! The engine on its own thread. It owns the session, the sampler and the conversation, takes
//! requests from the UI and answers on an unbounded channel (chat text must never be lost), while
//! its telemetry goes through the engine's bounded, never-blocking channel. The engine never waits
//! for the UI: sending on either channel cannot block.
//!
//! Requests are taken one at a time, between answers: `generate` holds the session for the whole
//! answer, so a sparsity or memory budget change asked during one applies from the answer after
//! it. Under a budget, a sparsity change that the engine's neuron cache depends on (0 to above 0
//! or back, the predictor on or off) is followed by setting the budget again, which rebuilds it.

use super::feed::{BudgetState, BudgetWhy, ChatEvent, Feed, NeuronCacheState};
use crate::commands::calibrate::Progress;
use crate::commands::common;
use sparsetop_engine::conversation::Conversation;
use sparsetop_engine::generate::{generate, StopReason};
use sparsetop_engine::sampler::Sampler;
use sparsetop_engine::sparse::SparsityConfig;
use sparsetop_engine::{Model, Session};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::mpsc::UnboundedSender;

/// What the UI asks of the engine.
#[derive(Debug)]
pub enum Request {
    Send(String),
    Clear,
    System(String),
    /// Change sparse decode's level and predictor use. The first time sparsity is turned on in a
    /// session started dense, this loads the model's profile, or calibrates one (about a minute).
    Sparsity(SparsityConfig),
    /// Set (`Some`, bytes) or lift (`None`) the memory budget. With sparse decode on, the first
    /// budget writes the neuron bundle when there is none yet (a few seconds).
    Budget(Option<u64>),
}

/// Where the worker finds a sparsity profile when the session started dense, as the command
/// line's `--profile` and `-t` say (see [`common::load_profile`]).
#[derive(Debug, Clone)]
pub struct SparsitySetup {
    pub model_path: PathBuf,
    /// `--profile`: used as is, never remade.
    pub profile: Option<PathBuf>,
    pub threads: usize,
    /// The settings the session starts with.
    pub initial: SparsityConfig,
}

/// The UI's handle on the worker thread.
pub struct Worker {
    tx: Option<Sender<Request>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker. `n_predict` limits each answer (`None` = until the model ends it).
    pub fn spawn(
        model: Arc<Model>,
        mut session: Session,
        mut sampler: Sampler,
        system: Option<String>,
        n_predict: Option<usize>,
        sparsity: SparsitySetup,
        out: UnboundedSender<Feed>,
    ) -> Worker {
        let (tx, rx) = std::sync::mpsc::channel::<Request>();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sparsetop-engine".into())
            .spawn(move || {
                let mut conv = Conversation::new(system);
                let _ = out.send(Feed::Chat(ChatEvent::Budget {
                    state: budget_state(&session),
                    why: BudgetWhy::Start,
                    error: None,
                }));
                serve(
                    &model,
                    &mut session,
                    &mut sampler,
                    &mut conv,
                    n_predict,
                    &sparsity,
                    &rx,
                    &stop2,
                    &out,
                )
            })
            .expect("spawn the engine thread");
        Worker {
            tx: Some(tx),
            stop,
            thread: Some(thread),
        }
    }

    /// Queues a request. The stop flag is cleared first, so a Ctrl+C pressed right after sending
    /// cannot be lost to a reset on the worker side.
    pub fn request(&self, r: Request) {
        if matches!(r, Request::Send(_)) {
            self.stop.store(false, Ordering::SeqCst);
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(r);
        }
    }

    /// Asks the answer being generated to stop after the current token.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for Worker {
    /// Stops any answer, closes the request channel and waits for the thread, so the model's
    /// threads are gone before the terminal is handed back.
    fn drop(&mut self) {
        self.stop();
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn serve(
    model: &Arc<Model>,
    session: &mut Session,
    sampler: &mut Sampler,
    conv: &mut Conversation,
    n_predict: Option<usize>,
    sparsity: &SparsitySetup,
    rx: &Receiver<Request>,
    stop: &AtomicBool,
    out: &UnboundedSender<Feed>,
) {
    let n_ctx = session.n_ctx();
    // Keep a quarter of the context (at most 1024 tokens) free for each answer, as `chat --plain`.
    let reserve = (n_ctx / 4).min(1024);
    let send = |e: ChatEvent| {
        let _ = out.send(Feed::Chat(e));
    };
    // The settings last accepted: what a refused request leaves in force.
    let mut in_force = sparsity.initial;
    while let Ok(req) = rx.recv() {
        match req {
            Request::Sparsity(want) => {
                let before = in_force;
                let mut rebuilt = false;
                let error = match change_sparsity(session, want, sparsity, &send) {
                    Ok(()) => match session.offload().map(|o| o.budget) {
                        Some(b) if cache_depends(before, want) => {
                            match set_budget(session, Some(b), &send) {
                                Ok(()) => {
                                    in_force = want;
                                    rebuilt = true;
                                    None
                                }
                                // Back to settings that fit the budget, so nothing is lost.
                                Err(e) => {
                                    Some(revert_sparsity(session, before, b, sparsity, &send, e))
                                }
                            }
                        }
                        _ => {
                            in_force = want;
                            None
                        }
                    },
                    Err(e) => Some(format!("{e:#}")),
                };
                send(ChatEvent::Sparsity {
                    level: in_force.level,
                    predictor: in_force.predictor,
                    error,
                });
                if rebuilt {
                    send(ChatEvent::Budget {
                        state: budget_state(session),
                        why: BudgetWhy::Sparsity,
                        error: None,
                    });
                }
            }
            Request::Budget(want) => {
                let before = session.offload().map(|o| o.budget);
                let error = match set_budget(session, want, &send) {
                    Ok(()) => None,
                    Err(e) => {
                        // A refusal leaves the engine's budget as it was; should one fail after
                        // the old state was let go, set the old budget again.
                        if before.is_some() && session.offload().is_none() {
                            let _ = set_budget(session, before, &send);
                        }
                        Some(for_the_chat(&e))
                    }
                };
                send(ChatEvent::Budget {
                    state: budget_state(session),
                    why: BudgetWhy::Request,
                    error,
                });
            }
            Request::Clear => {
                conv.messages.clear();
                session.clear();
                sampler.reset();
            }
            Request::System(s) => {
                conv.system = Some(s);
                conv.messages.clear();
                session.clear();
                sampler.reset();
            }
            Request::Send(text) => {
                conv.push("user", &text);
                let prompt = match conv.prompt(model, n_ctx, reserve) {
                    Ok(p) => p,
                    Err(e) => {
                        conv.messages.pop();
                        send(ChatEvent::Error {
                            message: e.to_string(),
                        });
                        continue;
                    }
                };
                if prompt.dropped > 0 {
                    send(ChatEvent::Dropped {
                        messages: prompt.dropped,
                    });
                }
                sampler.reset();
                let r = generate(session, sampler, &prompt.ids, n_predict, stop, |ev| {
                    if !ev.text.is_empty() {
                        send(ChatEvent::Token {
                            text: ev.text.to_string(),
                        });
                    }
                });
                match r {
                    Ok(g) => {
                        conv.push("assistant", &g.text);
                        send(ChatEvent::Done {
                            prompt_tokens: g.prompt_evaluated,
                            prompt_tok_s: g.prompt_tok_s(),
                            generated: g.generated_ids.len(),
                            gen_tok_s: g.gen_tok_s(),
                            ctx_used: session.tokens().len(),
                            stop: match g.stop {
                                StopReason::EndOfGeneration => "end",
                                StopReason::Limit => "limit",
                                StopReason::ContextFull => "context full",
                                StopReason::Cancelled => "stopped",
                            }
                            .to_string(),
                        });
                    }
                    Err(e) => {
                        conv.messages.pop();
                        send(ChatEvent::Error {
                            message: e.to_string(),
                        });
                    }
                }
            }
        }
    }
}

/// Applies `want` to the session. Reuses the profile in use; a session started dense loads (or
/// calibrates) one only when the level goes above 0, since level 0 is the dense path anyway.
fn change_sparsity(
    session: &mut Session,
    want: SparsityConfig,
    setup: &SparsitySetup,
    send: &dyn Fn(ChatEvent),
) -> anyhow::Result<()> {
    let profile = match session.sparse() {
        Some(s) => s.profile.clone(),
        None if want.level == 0.0 => return Ok(()),
        None => {
            let model = session.model().clone();
            // Progress only when its whole percentage changes: a stage has thousands of steps.
            let mut last = (String::new(), usize::MAX);
            common::load_profile_with(
                &model,
                &setup.model_path,
                setup.profile.as_deref(),
                setup.threads,
                &mut |p| match p {
                    Progress::Note(text) => send(ChatEvent::CalibrationNote { text }),
                    Progress::Detail(_) => {}
                    Progress::Stage { stage, done, total } => {
                        let pct = (done * 100).checked_div(total).unwrap_or(100);
                        if last.0 != stage || last.1 != pct {
                            last = (stage.to_string(), pct);
                            send(ChatEvent::CalibrationProgress {
                                stage: stage.to_string(),
                                done,
                                total,
                            });
                        }
                    }
                },
            )?
        }
    };
    session.set_sparsity(Some(profile), want)?;
    Ok(())
}

/// Whether going from sparse settings `a` to `b` changes what the engine's budget holds: the
/// neuron cache exists only while sparsity is above 0, and the predictor is in the fixed region.
fn cache_depends(a: SparsityConfig, b: SparsityConfig) -> bool {
    (a.level > 0.0) != (b.level > 0.0) || a.predictor != b.predictor
}

/// After the budget could not be set again under new sparse settings: back to `before` under the
/// same budget. Returns the error for the chat.
fn revert_sparsity(
    session: &mut Session,
    before: SparsityConfig,
    budget: u64,
    setup: &SparsitySetup,
    send: &dyn Fn(ChatEvent),
    e: anyhow::Error,
) -> String {
    let mut msg = format!(
        "the memory budget could not be set again for it: {}",
        for_the_chat(&e)
    );
    let back = change_sparsity(session, before, setup, send)
        .and_then(|()| set_budget(session, Some(budget), send));
    if let Err(e2) = back {
        msg.push_str(&format!(
            "; and going back to the previous settings failed too: {e2:#}"
        ));
    }
    msg
}

/// Sets the memory budget, telling the neuron bundle's making (when one is needed) to the UI.
fn set_budget(
    session: &mut Session,
    budget: Option<u64>,
    send: &dyn Fn(ChatEvent),
) -> anyhow::Result<()> {
    let mut last = usize::MAX;
    common::set_budget_with(session, budget, &mut |p| match p {
        Progress::Note(text) => send(ChatEvent::BundleNote { text }),
        Progress::Detail(_) => {}
        Progress::Stage { done, total, .. } => {
            let pct = (done * 100).checked_div(total).unwrap_or(100);
            if pct != last {
                last = pct;
                send(ChatEvent::BundleProgress { done, total });
            }
        }
    })
}

/// An engine error as the chat shows it: the minimum budget it names is typed as `/budget`.
fn for_the_chat(e: &anyhow::Error) -> String {
    format!("{e:#}").replace("Use --mem-budget ", "Use /budget ")
}

/// The session's memory budget and how it is used, for the UI.
pub fn budget_state(session: &Session) -> BudgetState {
    let model = session.model();
    let n_layer = model.config.n_layer;
    let removable = model.ffn_in_memory();
    match session.offload() {
        Some(o) => BudgetState {
            budget: Some(o.budget),
            fixed: o.fixed.total(),
            fixed_parts: o.fixed.describe(),
            n_layer,
            resident_layers: o.stream.resident_layers(),
            neurons: o.neurons.as_ref().map(|n| NeuronCacheState {
                hot_per_layer: n.hot_per_layer(),
                n_ff: model.config.n_ff,
                cold_slots: n.cold_slots(),
                bytes: n.bytes() as u64,
            }),
            removable,
        },
        None => {
            let fixed = session.fixed_region();
            BudgetState {
                budget: None,
                fixed: fixed.total(),
                fixed_parts: fixed.describe(),
                n_layer,
                resident_layers: n_layer,
                neurons: None,
                removable,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparsetop_engine::offload::bundle;
    use sparsetop_engine::sampler::SamplerParams;
    use sparsetop_engine::sparse::calibrate::{calibrate, CalibrateOptions};
    use sparsetop_engine::sparse::profile;
    use sparsetop_engine::SessionOptions;
    use std::path::Path;

    const HALF: SparsityConfig = SparsityConfig {
        level: 0.5,
        predictor: false,
    };

    /// The next chat event, skipping progress and notes.
    fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Feed>) -> ChatEvent {
        loop {
            match rx.blocking_recv().expect("the worker is alive") {
                Feed::Chat(ChatEvent::Token { .. } | ChatEvent::BundleNote { .. }) => {}
                Feed::Chat(ChatEvent::BundleProgress { .. }) => {}
                Feed::Chat(e) => return e,
                _ => {}
            }
        }
    }

    /// The `Done` of an answer (its tokens in context after it), failing on anything else.
    fn done(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Feed>) -> usize {
        match next(rx) {
            ChatEvent::Done { ctx_used, .. } => ctx_used,
            other => panic!("expected the answer's end, got {other:?}"),
        }
    }

    #[test]
    fn a_damaged_bundle_fails_one_answer_and_the_chat_goes_on_with_its_conversation() {
        // The tiny fixture model with its profile and bundle next to it, under the least budget:
        // no hot region, every record goes through the cold slots.
        let dir = std::env::temp_dir().join(format!(
            "sparsetop-worker-damaged-bundle-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.gguf");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/llama-linear.gguf"),
            &path,
        )
        .unwrap();
        let model = Model::load(&path).unwrap();
        let tokens: Vec<u32> = (0..200).map(|i| (i * 37 + 5) % 200 + 3).collect();
        let opts = CalibrateOptions {
            max_tokens: 200,
            n_ctx: 64,
            rank: 4,
            n_threads: 2,
        };
        let prof = Arc::new(
            calibrate(&model, &tokens, &opts, &mut |_, _, _| {})
                .unwrap()
                .0,
        );
        prof.write(&profile::default_path(&path)).unwrap();
        let bpath = bundle::default_path(&path);
        let info = bundle::write_bundle(&bpath, &model, &prof, &mut |_, _| {}).unwrap();
        let layout = info.layout;
        let mut session = Session::new(
            model.clone(),
            &SessionOptions {
                n_ctx: 512,
                n_batch: 64,
                n_threads: 2,
                ..Default::default()
            },
        )
        .unwrap();
        session.set_sparsity(Some(prof), HALF).unwrap();
        session.set_neuron_bundle(Some(info)).unwrap();
        let min = session.fixed_region().total();
        session.set_mem_budget(Some(min)).unwrap();
        let sampler = Sampler::new(SamplerParams::greedy(), model.config.n_vocab);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let setup = SparsitySetup {
            model_path: path.clone(),
            profile: None,
            threads: 2,
            initial: HALF,
        };
        let worker = Worker::spawn(model, session, sampler, None, Some(6), setup, tx);
        assert!(matches!(
            next(&mut rx),
            ChatEvent::Budget { error: None, .. }
        ));

        worker.request(Request::Send("What is 2+2?".into()));
        let first = done(&mut rx);

        // Damage a record of cluster 30, and set the budget again so the cache reads it anew.
        let at = layout.record_offset(0, layout.ranks_of(30).start) + 10;
        let mut bytes = std::fs::read(&bpath).unwrap();
        bytes[at as usize] ^= 0x80;
        std::fs::write(&bpath, &bytes).unwrap();
        worker.request(Request::Budget(Some(min)));
        match next(&mut rx) {
            ChatEvent::Budget { error: None, .. } => {}
            other => panic!("the budget is set again: {other:?}"),
        }
        worker.request(Request::Send("What is 2+2?".into()));
        match next(&mut rx) {
            ChatEvent::Error { message } => {
                assert!(message.contains("layer 0 cluster 30 "), "{message}");
                assert!(message.contains(&bpath.display().to_string()), "{message}");
            }
            other => panic!("expected the damage reported, got {other:?}"),
        }

        // Without the budget nothing is read from the bundle: the chat goes on, and the first
        // exchange is still in its conversation (the prompt holds it: about twice the first
        // answer's context).
        worker.request(Request::Budget(None));
        assert!(matches!(
            next(&mut rx),
            ChatEvent::Budget { error: None, .. }
        ));
        worker.request(Request::Send("What is 2+2?".into()));
        let third = done(&mut rx);
        assert!(
            third > first + first / 2,
            "the conversation was kept: {first} tokens after the first answer, {third} after the third"
        );
        drop(worker);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
