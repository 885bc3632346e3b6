//! The full-screen UI: chat with the model on the left, live engine panels on the right.
//!
//! The engine runs on its own thread ([`engine_worker`]); the UI is a tokio event loop
//! ([`event_loop`]) over an [`app::App`] state that is drawn by [`ui::draw`]. State and drawing
//! never touch the terminal, so tests drive them with synthetic events into a `TestBackend`.

pub mod app;
pub mod chat_view;
pub mod engine_worker;
pub mod event_loop;
pub mod feed;
pub mod host;
pub mod input;
pub mod keys;
pub mod layout;
pub mod metrics;
pub mod panels;
pub mod record;
pub mod replay;
pub mod safe_text;
pub mod series;
pub mod signals;
pub mod slash;
pub mod terminal;
pub mod theme;
pub mod transcript;
pub mod ui;

#[cfg(test)]
mod snapshot_tests;

use crate::cli::{ChatArgs, ReplayArgs, UiArgs};
use crate::commands::{self, common};
use app::{App, Mode};
use event_loop::{Rates, Sources};
use sparsetop_engine::sampler::{Sampler, SamplerParams};
use sparsetop_engine::telemetry;
use std::io::IsTerminal;
use std::time::Duration;
use theme::Theme;

/// `NO_COLOR` set to anything but the empty string (no-color.org).
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// The sampler settings as the status line shows them.
pub fn describe_sampler(p: &SamplerParams) -> String {
    let mut s = if p.temp <= 0.0 {
        "greedy (temp 0)".to_string()
    } else {
        format!(
            "temp {} top-k {} top-p {} min-p {}",
            p.temp, p.top_k, p.top_p, p.min_p
        )
    };
    if p.repeat_penalty != 1.0 {
        s.push_str(&format!(" rep {}", p.repeat_penalty));
    }
    s.push_str(&format!(" seed {}", p.seed));
    s
}

fn rates(ui: &UiArgs) -> Rates {
    Rates {
        fps: ui.fps,
        tick: Duration::from_millis(ui.tick_rate),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `sparsetop chat`: the full-screen UI, or the line-mode chat with `--plain` or when stdin or
/// stdout is not a terminal.
pub fn chat(a: &ChatArgs) -> anyhow::Result<()> {
    if a.plain || !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return commands::chat::run(a);
    }
    // Check the cheap things before loading the model.
    let theme = Theme::select(&a.ui.theme, no_color())?;
    let params = common::sampler_params(&a.sampling)?;
    let path = common::model_file(&a.engine)?;
    // What the chat reads, which its recording and `/save` must never write over.
    let inputs: Vec<std::path::PathBuf> = std::iter::once(path.clone())
        .chain(a.engine.sparsity.profile.clone())
        .collect();
    let input_refs: Vec<&std::path::Path> = inputs.iter().map(|p| p.as_path()).collect();
    if let Some(p) = &a.record {
        sparsetop_engine::safe_write::check_target(p, &input_refs)?;
    }
    let model = common::load_model_for_engine(&path, &a.engine)?;
    let mut session = common::new_session(&model, &a.engine)?;
    common::apply_sparsity(&mut session, &path, &a.engine.sparsity, a.engine.threads)?;
    // Before the screen is taken, so a budget too small ends here with the minimum, and the
    // neuron bundle's making (when needed) shows on stderr; the chat tells how the budget is used.
    if let Some(b) = a.engine.budget.mem_budget {
        let mut bar = commands::convert::progress_bar("writing the neuron bundle");
        common::set_budget_with(&mut session, Some(b), &mut |p| match p {
            commands::calibrate::Progress::Note(s) => diag!("{s}"),
            commands::calibrate::Progress::Detail(_) => {}
            commands::calibrate::Progress::Stage { done, total, .. } => bar(done, total),
        })?;
    }
    let (ttx, trx) = telemetry::channel(4096);
    let drops = ttx.drop_counter();
    session.set_telemetry(Some(ttx));
    let info = session.info();
    let sampler_desc = describe_sampler(&params);
    let recorder = match &a.record {
        Some(p) => Some(record::Recorder::create(
            p,
            &input_refs,
            record::Header {
                model: info.model.clone(),
                sampler: sampler_desc.clone(),
                n_ctx: info.n_ctx as usize,
            },
        )?),
        None => None,
    };
    let mut app = App::new(
        theme,
        Mode::Live,
        info.model.clone(),
        sampler_desc,
        info.n_ctx as usize,
    );
    app.inputs = inputs.iter().cloned().chain(a.record.clone()).collect();
    let sparsity = engine_worker::SparsitySetup {
        model_path: path.clone(),
        profile: a.engine.sparsity.profile.clone(),
        threads: a.engine.threads,
        initial: sparsetop_engine::sparse::SparsityConfig {
            level: a.engine.sparsity.sparsity,
            predictor: a.engine.sparsity.predictor,
        },
    };
    app.set_sparsity_in_force(sparsity.initial);
    let (ftx, frx) = tokio::sync::mpsc::unbounded_channel();
    let sampler = Sampler::new(params, model.config.n_vocab);
    let worker = engine_worker::Worker::spawn(
        model.clone(),
        session,
        sampler,
        a.system.clone(),
        common::n_predict(a.n_predict),
        sparsity,
        ftx,
    );
    let rt = runtime()?;
    // Listening before the terminal is taken: from then on a signal restores it.
    let signals = {
        let _in_runtime = rt.enter();
        signals::Signals::new()?
    };
    let mut tui = terminal::Tui::enter(!a.ui.no_mouse)?;
    app.shift_enter = tui.shift_enter;
    let sources = Sources {
        feed: frx,
        telemetry: Some(trx),
        telemetry_drops: Some(drops),
        host: Some(host::HostSampler::new()),
        worker: Some(worker),
        recorder,
    };
    let r = rt.block_on(event_loop::run(
        &mut tui,
        &mut app,
        sources,
        signals,
        rates(&a.ui),
    ));
    drop(tui);
    r
}

/// `sparsetop replay FILE.jsonl`: the panels and chat of a recording, without a model.
pub fn replay(a: &ReplayArgs) -> anyhow::Result<()> {
    let theme = Theme::select(&a.ui.theme, no_color())?;
    let (header, lines) = replay::read(&a.file)?;
    if !std::io::stdout().is_terminal() {
        anyhow::bail!("replay needs a terminal");
    }
    let header = header.unwrap_or(record::Header {
        model: "recording".into(),
        sampler: String::new(),
        n_ctx: 0,
    });
    let mut app = App::new(
        theme,
        Mode::Replay {
            file: a.file.display().to_string(),
            speed: a.speed,
            finished: false,
        },
        header.model,
        header.sampler,
        header.n_ctx,
    );
    app.inputs = vec![a.file.clone()];
    let (ftx, frx) = tokio::sync::mpsc::unbounded_channel();
    let rt = runtime()?;
    // Listening before the terminal is taken: from then on a signal restores it.
    let signals = {
        let _in_runtime = rt.enter();
        signals::Signals::new()?
    };
    let mut tui = terminal::Tui::enter(!a.ui.no_mouse)?;
    app.shift_enter = tui.shift_enter;
    rt.spawn(replay::play(lines, a.speed, ftx));
    let sources = Sources {
        feed: frx,
        telemetry: None,
        telemetry_drops: None,
        host: None,
        worker: None,
        recorder: None,
    };
    let r = rt.block_on(event_loop::run(
        &mut tui,
        &mut app,
        sources,
        signals,
        rates(&a.ui),
    ));
    drop(tui);
    r
}
