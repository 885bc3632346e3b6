//! The event loop: one `tokio::select!` over terminal input, the chat/replay feed, the tick (host
//! sampling and telemetry) and signals ([`super::signals`]). The screen is redrawn only when something changed,
//! and at most `fps` times a second, so a fast stream of tokens costs a bounded amount of drawing.

use super::app::{App, Effect};
use super::engine_worker::{Request, Worker};
use super::feed::{ChatEvent, Feed};
use super::host::HostSampler;
use super::record::Recorder;
use super::signals::{Asked, Signals, Terminated};
use super::terminal::{self, Tui};
use super::ui;
use crossterm::event::{Event as TermEvent, EventStream};
use futures_util::StreamExt;
use sparsetop_engine::telemetry::Event;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// Where the app's data comes from: the live engine, or a replay.
pub struct Sources {
    pub feed: UnboundedReceiver<Feed>,
    pub telemetry: Option<std::sync::mpsc::Receiver<Event>>,
    pub telemetry_drops: Option<Arc<AtomicU64>>,
    pub host: Option<HostSampler>,
    pub worker: Option<Worker>,
    pub recorder: Option<Recorder>,
}

pub struct Rates {
    pub fps: u32,
    pub tick: Duration,
}

/// Runs the UI until it quits (`Ok`), fails, or a signal ends it (a [`Terminated`] error, after
/// the terminal is restored, the engine stopped and the recording flushed).
pub async fn run(
    tui: &mut Tui,
    app: &mut App,
    mut src: Sources,
    mut signals: Signals,
    rates: Rates,
) -> anyhow::Result<()> {
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(rates.tick.max(Duration::from_millis(20)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let frame = Duration::from_secs_f64(1.0 / rates.fps.clamp(1, 240) as f64);
    let mut dirty = true;
    let mut last_draw = Instant::now() - frame;
    let result: anyhow::Result<()> = loop {
        if drain_telemetry(app, &mut src)? {
            dirty = true;
        }
        if dirty && last_draw.elapsed() >= frame {
            tui.terminal.draw(|f| ui::draw(f, app))?;
            last_draw = Instant::now();
            dirty = false;
        }
        if app.should_quit {
            break Ok(());
        }
        let next_frame = tokio::time::Instant::from_std(last_draw + frame);
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(ev)) => {
                    dirty = true;
                    if on_terminal_event(app, &mut src, ev)? {
                        tui.suspend()?;
                    }
                }
                Some(Err(e)) => break Err(e.into()),
                None => break Ok(()),
            },
            Some(feed) = src.feed.recv() => {
                if let Some(r) = &mut src.recorder {
                    r.record(&feed)?;
                }
                app.apply(feed);
                dirty = true;
            }
            _ = tick.tick() => {
                if let Some(h) = &mut src.host {
                    if let Some(s) = h.sample() {
                        let feed = Feed::Host(s);
                        if let Some(r) = &mut src.recorder {
                            r.record(&feed)?;
                        }
                        app.apply(feed);
                        dirty = true;
                    }
                }
                if let Some(d) = &src.telemetry_drops {
                    app.metrics.dropped = d.load(Ordering::Relaxed);
                }
                if let Some(r) = &mut src.recorder {
                    r.flush()?;
                }
            }
            _ = tokio::time::sleep_until(next_frame), if dirty => {}
            asked = signals.recv() => match asked {
                Asked::Exit(sig) => break Err(Terminated(sig).into()),
                Asked::Suspend => {
                    tui.suspend()?;
                    dirty = true;
                }
                Asked::Resume => {
                    tui.resume()?;
                    dirty = true;
                }
            },
        }
    };
    if result
        .as_ref()
        .is_err_and(|e| e.downcast_ref::<Terminated>().is_some())
    {
        // Sent from outside: the terminal first, whatever the engine is busy with.
        terminal::restore();
    }
    // Stop the engine (it stops after the current token) before the terminal is handed back.
    drop(src.worker.take());
    if let Some(mut r) = src.recorder.take() {
        let flushed = r.flush();
        if result.is_ok() {
            flushed?;
        }
    }
    result
}

/// Folds every telemetry event waiting in the channel; true if there were any.
fn drain_telemetry(app: &mut App, src: &mut Sources) -> anyhow::Result<bool> {
    let Some(rx) = &src.telemetry else {
        return Ok(false);
    };
    let mut any = false;
    while let Ok(ev) = rx.try_recv() {
        let feed = Feed::Telemetry(ev);
        if let Some(r) = &mut src.recorder {
            r.record(&feed)?;
        }
        app.apply(feed);
        any = true;
    }
    Ok(any)
}

/// Applies a terminal event; true when it asks to suspend (Ctrl+Z), which needs the terminal.
fn on_terminal_event(app: &mut App, src: &mut Sources, ev: TermEvent) -> anyhow::Result<bool> {
    let mut suspend = false;
    let effects = match ev {
        TermEvent::Key(k) => app.on_key(k),
        TermEvent::Mouse(m) => {
            app.on_mouse(m);
            vec![]
        }
        TermEvent::Paste(p) => {
            app.on_paste(&p);
            vec![]
        }
        _ => vec![],
    };
    for fx in effects {
        // The chat event to record for the request (the worker's answers are recorded as they
        // arrive on the feed).
        let (req, chat) = match fx {
            Effect::Quit => {
                app.should_quit = true;
                continue;
            }
            Effect::Suspend => {
                suspend = true;
                continue;
            }
            Effect::Stop => {
                if let Some(w) = &src.worker {
                    w.stop();
                }
                continue;
            }
            Effect::Send(t) => (Request::Send(t.clone()), Some(ChatEvent::User { text: t })),
            Effect::Clear => (Request::Clear, Some(ChatEvent::Cleared)),
            Effect::System(t) => (
                Request::System(t.clone()),
                Some(ChatEvent::System { text: t }),
            ),
            Effect::Sparsity(c) => (Request::Sparsity(c), None),
            Effect::Budget(b) => (Request::Budget(b), None),
        };
        if let (Some(r), Some(chat)) = (&mut src.recorder, chat) {
            r.record(&Feed::Chat(chat))?;
        }
        if let Some(w) = &src.worker {
            w.request(req);
        }
    }
    Ok(suspend)
}
