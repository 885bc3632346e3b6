//! Snapshot tests of the whole app and of each panel, fed with synthetic telemetry and drawn into
//! ratatui's `TestBackend`. Text snapshots check layout and wording at 120×40, 80×24 and 45×20;
//! styled (Debug) snapshots check the themes and NO_COLOR's bold/reverse emphasis.

use super::app::{App, Focus, Mode};
use super::feed::{BudgetState, BudgetWhy, ChatEvent, Feed, NeuronCacheState};
use super::metrics::{HostSample, Metrics};
use super::panels::{Ctx, Kind};
use super::theme::Theme;
use super::ui;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::Terminal;
use sparsetop_engine::sparse::SparsityConfig;
use sparsetop_engine::telemetry::{
    CacheSample, Event, IoSample, MemorySample, Phase, SessionInfo, SparsitySample, TokenSample,
};

fn session() -> Event {
    Event::Session(SessionInfo {
        model: "SmolLM2 135M".into(),
        arch: "llama".into(),
        n_layer: 30,
        n_ff: 1536,
        n_ctx: 4096,
        n_threads: 4,
        precision: "fast".into(),
        simd: "avx2".into(),
        weight_bytes: 80 << 20,
        kv_bytes: 90 << 20,
    })
}

/// A session's worth of telemetry: a prompt, 60 decoded tokens with a wobble in speed, and the
/// samples of sparse decode under a memory budget (cache, I/O, memory, sparsity).
fn telemetry() -> Vec<Event> {
    let mut evs = vec![
        session(),
        Event::Token(TokenSample {
            phase: Phase::Prefill,
            tokens: 40,
            micros: 200_000,
            pos: 40,
        }),
    ];
    // As SmolLM2 sends them at sparsity 0.5 under an 80 MiB budget: the hottest neurons in
    // memory, the rest prefetched into cold slots or read on a miss, each token reading ~46 MiB.
    for i in 0..60u32 {
        let micros = 20_000 + (i % 7) as u64 * 2_500;
        let read = 47_991_960 + (i % 5) as u64 * 1_332_000;
        evs.push(Event::Cache(CacheSample {
            hits: 44_879 - (i % 5) as u64 * 1_000,
            misses: 1_201 + (i % 5) as u64 * 1_000,
            bytes_read: read,
            prefetch_used: 34_829,
            prefetch_wasted: 12,
            hot_bytes: 13_386_600,
            cold_bytes: 7_409_664,
        }));
        evs.push(Event::Io(IoSample {
            queue_depth: i % 4,
            in_flight: 3,
            read_latency_us: 2_800.0,
            bytes_read: read,
        }));
        evs.push(Event::Memory(MemorySample {
            resident: 83_849_320,
            budget: Some(80 << 20),
        }));
        evs.push(Event::Token(TokenSample {
            phase: Phase::Decode,
            tokens: 1,
            micros,
            pos: 41 + i,
        }));
    }
    evs.push(Event::Sparsity(SparsitySample {
        active: (0..30).map(|l| 60 + l * 40).collect(),
        n_ff: 1536,
        recall: Some(0.93),
        // Activity falling from the hottest band to the coldest, more so in deep layers.
        bands: (0..30u32)
            .flat_map(|l| (0..8u32).map(move |b| (192 - b * 20).saturating_sub(l * b / 2)))
            .collect(),
        level: 0.5,
        predictor: true,
    }));
    evs
}

fn host() -> HostSample {
    HostSample {
        cpu: vec![97.0, 88.5, 45.0, 12.0],
        rss: 310 << 20,
        interval_s: 0.5,
    }
}

fn full_metrics() -> Metrics {
    let mut m = Metrics::default();
    for e in telemetry() {
        m.apply(&e);
    }
    m.apply_host(host());
    m
}

fn theme(name: &str) -> Theme {
    Theme::builtin(name).unwrap()
}

fn new_app(th: Theme) -> App {
    App::new(
        th,
        Mode::Live,
        "SmolLM2 135M".into(),
        "greedy (temp 0) seed 42".into(),
        4096,
    )
}

/// An app mid-conversation, fed with everything the live engine sends.
fn busy_app(th: Theme) -> App {
    let mut app = new_app(th);
    app.apply(Feed::Chat(ChatEvent::User {
        text: "What is the capital of France?".into(),
    }));
    for w in ["The capital", " of France", " is Paris."] {
        app.apply(Feed::Chat(ChatEvent::Token { text: w.into() }));
    }
    app.apply(Feed::Chat(ChatEvent::Done {
        prompt_tokens: 40,
        prompt_tok_s: 200.0,
        generated: 8,
        gen_tok_s: 42.5,
        ctx_used: 48,
        stop: "end".into(),
    }));
    app.apply(Feed::Chat(ChatEvent::User {
        text: "Tell me a long story about a dragon who learns to read, please.".into(),
    }));
    app.apply(Feed::Chat(ChatEvent::Dropped { messages: 2 }));
    app.apply(Feed::Chat(ChatEvent::Token {
        text: "Once upon a time, in a valley of green hills, there lived a dragon named Ember who"
            .into(),
    }));
    for e in telemetry() {
        app.apply(Feed::Telemetry(e));
    }
    app.apply(Feed::Host(host()));
    for c in "and then?".chars() {
        app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    app
}

fn draw(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(f, app)).unwrap();
    t
}

/// The buffer's text, one line per row (styles left out).
fn text(buf: &Buffer) -> String {
    let a = buf.area;
    let mut out = String::new();
    for y in a.y..a.bottom() {
        let mut skip = 0;
        for x in a.x..a.right() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let s = buf[(x, y)].symbol();
            skip = unicode_width::UnicodeWidthStr::width(s).saturating_sub(1);
            out.push_str(s);
        }
        out.push('\n');
    }
    out
}

#[test]
fn app_with_data_120x40() {
    insta::assert_snapshot!(text(
        draw(&busy_app(theme("default")), 120, 40)
            .backend()
            .buffer()
    ));
}

#[test]
fn app_with_data_80x24() {
    insta::assert_snapshot!(text(
        draw(&busy_app(theme("default")), 80, 24).backend().buffer()
    ));
}

#[test]
fn app_with_data_45x20() {
    insta::assert_snapshot!(text(
        draw(&busy_app(theme("default")), 45, 20).backend().buffer()
    ));
}

#[test]
fn app_at_start_80x24() {
    let mut app = new_app(theme("default"));
    app.apply(Feed::Telemetry(session()));
    insta::assert_snapshot!(text(draw(&app, 80, 24).backend().buffer()));
}

#[test]
fn help_overlay_45x20() {
    let mut app = busy_app(theme("default"));
    app.on_key(KeyEvent::new(KeyCode::Char('?'), KeyModifiers::ALT));
    assert!(app.help);
    insta::assert_snapshot!(text(draw(&app, 45, 20).backend().buffer()));
    app.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    assert!(!app.help);
}

#[test]
fn help_overlay_120x40() {
    let mut app = new_app(theme("default"));
    app.on_key(KeyEvent::new(KeyCode::F(1), KeyModifiers::NONE));
    insta::assert_snapshot!(text(draw(&app, 120, 40).backend().buffer()));
}

#[test]
fn replay_finished_and_paused_80x24() {
    let mut app = busy_app(theme("default"));
    app.mode = Mode::Replay {
        file: "demo.jsonl".into(),
        speed: 2.0,
        finished: false,
    };
    app.apply(Feed::ReplayEnd);
    app.focus = Focus::Panels;
    app.on_key(KeyEvent::new(KeyCode::Char('p'), KeyModifiers::NONE));
    assert!(app.frozen.is_some());
    // Data arriving while paused does not change what the panels show.
    app.apply(Feed::Host(HostSample {
        cpu: vec![1.0; 4],
        rss: 1,
        interval_s: 0.5,
    }));
    insta::assert_snapshot!(text(draw(&app, 80, 24).backend().buffer()));
}

fn panel_full(kind: Kind, m: &Metrics, th: &Theme, w: u16) -> Buffer {
    let h = kind.full_height(m, w);
    let mut buf = Buffer::empty(Rect::new(0, 0, w, h));
    let cx = Ctx {
        m,
        th,
        focused: false,
        paused: false,
    };
    kind.render_full(&cx, buf.area, &mut buf);
    buf
}

fn panel_sized(kind: Kind, m: &Metrics, th: &Theme, w: u16, h: u16) -> Buffer {
    let mut buf = Buffer::empty(Rect::new(0, 0, w, h));
    let cx = Ctx {
        m,
        th,
        focused: false,
        paused: false,
    };
    kind.render_full(&cx, buf.area, &mut buf);
    buf
}

fn panel_line(kind: Kind, m: &Metrics, th: &Theme, w: u16) -> Buffer {
    let mut buf = Buffer::empty(Rect::new(0, 0, w, 1));
    let cx = Ctx {
        m,
        th,
        focused: false,
        paused: false,
    };
    kind.render_line(&cx, buf.area, &mut buf);
    buf
}

/// Every panel, full and one-line, with data and without.
#[test]
fn each_panel_with_and_without_data() {
    let th = theme("default");
    let full = full_metrics();
    let empty = Metrics::default();
    let mut host_only = Metrics::default();
    host_only.apply_host(host());
    for kind in Kind::ORDER {
        let name = format!("{kind:?}").to_lowercase();
        let mut out = String::new();
        for (label, m) in [
            ("with data", &full),
            ("no data", &empty),
            ("dense engine, host sampled", &host_only),
        ] {
            out.push_str(&format!("--- {label}: full, 44 wide\n"));
            out.push_str(&text(&panel_full(kind, m, &th, 44)));
            out.push_str(&format!("--- {label}: one line, 44 wide\n"));
            out.push_str(&text(&panel_line(kind, m, &th, 44)));
        }
        insta::assert_snapshot!(format!("panel_{name}"), out);
    }
}

/// The styles of one panel and the status line in each theme, and under NO_COLOR.
#[test]
fn themes_and_no_color_styles() {
    let m = full_metrics();
    for (label, th) in [
        ("default", theme("default")),
        ("dark256", theme("dark256")),
        ("light", theme("light")),
        ("mono", theme("mono")),
        ("no_color", Theme::select("dark256", true).unwrap()),
    ] {
        let mut app = new_app(th.clone());
        app.focus = Focus::Panels;
        let full = panel_full(Kind::Memory, &m, &th, 30);
        let mut buf = Buffer::empty(Rect::new(0, 0, 30, 5));
        let cx = Ctx {
            m: &m,
            th: &th,
            focused: true,
            paused: false,
        };
        Kind::Memory.render_full(&cx, Rect::new(0, 0, 30, 4), &mut buf);
        let status = draw(&app, 30, 12);
        insta::assert_debug_snapshot!(
            format!("theme_{label}"),
            (full, buf, status.backend().buffer().clone())
        );
    }
}

#[test]
fn layout_keeps_working_down_to_45x20_and_on_resize() {
    let app = busy_app(theme("default"));
    for (w, h) in [
        (200, 60),
        (120, 40),
        (80, 24),
        (61, 20),
        (60, 30),
        (45, 20),
        (30, 10),
        (10, 4),
        (1, 1),
    ] {
        let t = draw(&app, w, h);
        let s = text(t.backend().buffer());
        if w >= 45 && h >= 20 {
            assert!(s.contains("Ember"), "{w}x{h}:\n{s}");
            assert!(s.contains("ctx 100/4096"), "{w}x{h}:\n{s}");
        }
        if w >= 80 && h >= 24 {
            assert!(s.contains("Paris") && s.contains("greedy"), "{w}x{h}:\n{s}");
        }
    }
}

#[test]
fn ctrl_c_stops_then_quits_and_slash_commands_reply() {
    let mut app = new_app(theme("default"));
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    for c in "hi".chars() {
        app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    let fx = app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert_eq!(fx, vec![super::app::Effect::Send("hi".into())]);
    assert!(app.generating);
    assert_eq!(app.on_key(ctrl_c), vec![super::app::Effect::Stop]);
    app.apply(Feed::Chat(ChatEvent::Done {
        prompt_tokens: 1,
        prompt_tok_s: 1.0,
        generated: 1,
        gen_tok_s: 1.0,
        ctx_used: 2,
        stop: "stopped".into(),
    }));
    assert_eq!(app.on_key(ctrl_c), vec![super::app::Effect::Quit]);
    // When idle, the first Ctrl+C only warns.
    let mut app = new_app(theme("default"));
    assert!(app.on_key(ctrl_c).is_empty());
    assert!(app.flash.as_deref().unwrap().contains("again"));
    assert_eq!(app.on_key(ctrl_c), vec![super::app::Effect::Quit]);
    // Slash commands.
    for (cmd, needle) in [
        ("/budget", "memory budget unknown"),
        (
            "/sparsity",
            "sparsity settings unknown. /sparsity X sets it",
        ),
    ] {
        for c in cmd.chars() {
            app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
        assert!(app
            .on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
            .is_empty());
        assert!(app.messages.last().unwrap().text.contains(needle));
    }
    let path = std::env::temp_dir().join(format!("sparsetop-save-{}.md", std::process::id()));
    for c in format!("/save {}", path.display()).chars() {
        app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let md = std::fs::read_to_string(&path).unwrap();
    assert!(md.starts_with("# sparsetop chat"), "{md}");
    let _ = std::fs::remove_file(&path);
    for c in "/clear".chars() {
        app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    let fx = app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert_eq!(fx, vec![super::app::Effect::Clear]);
    assert_eq!(app.messages.len(), 1);
    // `+` types text once the input has some, and acts (with a notice) with Alt.
    type_str(&mut app, "a+");
    assert_eq!(app.input.text(), "a+");
    app.on_key(KeyEvent::new(KeyCode::Char('+'), KeyModifiers::ALT));
    assert!(app.flash.as_deref().unwrap().contains("memory budget"));
}

#[test]
fn record_lines_round_trip_into_feed() {
    use super::record::RecordLine;
    let line = r#"{"t":1.5,"telemetry":{"type":"token","phase":"decode","tokens":1,"micros":20000,"pos":9}}"#;
    let r: RecordLine = serde_json::from_str(line).unwrap();
    assert!(matches!(r.feed(), Some(Feed::Telemetry(Event::Token(_)))));
    let line = r#"{"t":2,"chat":{"kind":"token","text":"Hi"}}"#;
    let r: RecordLine = serde_json::from_str(line).unwrap();
    assert_eq!(
        r.feed(),
        Some(Feed::Chat(ChatEvent::Token { text: "Hi".into() }))
    );
}

fn type_str(app: &mut App, s: &str) {
    for c in s.chars() {
        app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
}

fn enter(app: &mut App) -> Vec<super::app::Effect> {
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
}

fn cfg(level: f32, predictor: bool) -> SparsityConfig {
    SparsityConfig { level, predictor }
}

/// `/sparsity`, `/predictor`, `[` and `]` become engine requests; the engine's answers set what
/// the panel's title says, and a refusal is an error line that loses nothing.
#[test]
fn sparsity_requests_and_answers() {
    use super::app::Effect;
    let mut app = new_app(theme("default"));
    app.set_sparsity_in_force(cfg(0.5, false));
    type_str(&mut app, "/sparsity 0.3");
    assert_eq!(enter(&mut app), vec![Effect::Sparsity(cfg(0.3, false))]);
    assert!(app.input.text().is_empty());
    // The title changes when the engine answers, not before.
    assert_eq!(
        Kind::Sparsity.heading(&app.metrics),
        "FFN · sparsity 0.5 · predictor off"
    );
    app.apply(Feed::Chat(ChatEvent::Sparsity {
        level: 0.3,
        predictor: false,
        error: None,
    }));
    assert_eq!(
        Kind::Sparsity.heading(&app.metrics),
        "FFN · sparsity 0.3 · predictor off"
    );
    assert_eq!(
        app.messages.last().unwrap().text,
        "now sparsity 0.3 · predictor off"
    );
    // Out of range: an error line in the chat at once, nothing sent, the command kept to fix.
    type_str(&mut app, "/sparsity 1.5");
    assert!(enter(&mut app).is_empty());
    let last = app.messages.last().unwrap();
    assert_eq!(last.role, super::app::Role::Error);
    assert!(last.text.contains("out of range"), "{}", last.text);
    assert_eq!(app.input.take(), "/sparsity 1.5");
    // `/predictor on`, refused by the engine: an error line, the settings unchanged.
    type_str(&mut app, "/predictor on");
    assert_eq!(enter(&mut app), vec![Effect::Sparsity(cfg(0.3, true))]);
    app.apply(Feed::Chat(ChatEvent::Sparsity {
        level: 0.3,
        predictor: false,
        error: Some("the sparsity profile has no predictor".into()),
    }));
    let last = app.messages.last().unwrap();
    assert_eq!(last.role, super::app::Role::Error);
    assert!(last.text.contains("no predictor") && last.text.contains("still sparsity 0.3"));
    assert_eq!(app.sparse_wanted, cfg(0.3, false));
    // `]` and `[` step from what was last asked, even before the engine answers.
    let bracket = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    assert_eq!(
        app.on_key(bracket(']')),
        vec![Effect::Sparsity(cfg(0.4, false))]
    );
    assert_eq!(
        app.on_key(bracket(']')),
        vec![Effect::Sparsity(cfg(0.5, false))]
    );
    // The answer to the first request does not undo the second.
    app.apply(Feed::Chat(ChatEvent::Sparsity {
        level: 0.4,
        predictor: false,
        error: None,
    }));
    assert_eq!(app.sparse_wanted, cfg(0.5, false));
    assert_eq!(
        app.on_key(bracket('[')),
        vec![Effect::Sparsity(cfg(0.4, false))]
    );
    // With text in the input they type; at the ends of the range they say so.
    type_str(&mut app, "a");
    assert!(app.on_key(bracket('[')).is_empty());
    assert_eq!(app.input.text(), "a[");
    app.input.take();
    type_str(&mut app, "/sparsity 0");
    assert_eq!(enter(&mut app), vec![Effect::Sparsity(cfg(0.0, false))]);
    assert!(app.on_key(bracket('[')).is_empty());
    assert!(app.flash.as_deref().unwrap().contains("already 0"));
    // During an answer a change is queued for after it, and its notice does not split the answer.
    type_str(&mut app, "hi");
    assert_eq!(enter(&mut app), vec![Effect::Send("hi".into())]);
    assert_eq!(
        app.on_key(KeyEvent::new(KeyCode::Char(']'), KeyModifiers::ALT)),
        vec![Effect::Sparsity(cfg(0.1, false))]
    );
    assert!(app.flash.as_deref().unwrap().contains("after this answer"));
    app.apply(Feed::Chat(ChatEvent::Sparsity {
        level: 0.1,
        predictor: false,
        error: None,
    }));
    app.apply(Feed::Chat(ChatEvent::Token {
        text: "Hello".into(),
    }));
    assert_eq!(app.messages.last().unwrap().text, "Hello");
    assert!(app.generating);
    // A replay has no engine to change.
    app.mode = Mode::Replay {
        file: "x".into(),
        speed: 1.0,
        finished: true,
    };
    app.generating = false;
    type_str(&mut app, "/sparsity 0.2");
    assert!(enter(&mut app).is_empty());
}

/// An app whose sparsity panel has had two tokens of heat, at 0.5 with the predictor: the
/// telemetry's sample, then one with every band half active (a quarter of the way to it).
fn heat_app(th: Theme) -> App {
    let mut app = busy_app(th);
    app.set_sparsity_in_force(cfg(0.5, true));
    for e in telemetry() {
        if let Event::Sparsity(mut s) = e {
            app.apply(Feed::Telemetry(Event::Sparsity(s.clone())));
            s.bands = vec![96; s.bands.len()];
            app.apply(Feed::Telemetry(Event::Sparsity(s)));
        }
    }
    app
}

#[test]
fn sparsity_heat_strip_200x60() {
    insta::assert_snapshot!(text(
        draw(&heat_app(theme("default")), 200, 60)
            .backend()
            .buffer()
    ));
}

#[test]
fn sparsity_heat_strip_45x20() {
    insta::assert_snapshot!(text(
        draw(&heat_app(theme("default")), 45, 20).backend().buffer()
    ));
}

/// The sparsity panel at the heights the layout can give it (compact, merged bands, every
/// band), at a narrow and a wide column, and a model with more layers than columns.
#[test]
fn sparsity_panel_sizes() {
    let th = theme("default");
    let m = heat_app(th.clone()).metrics;
    let mut out = String::new();
    for (w, h) in [(32, 4), (44, 7), (44, 13), (60, 13)] {
        out.push_str(&format!("--- {w}x{h}\n"));
        out.push_str(&text(&panel_sized(Kind::Sparsity, &m, &th, w, h)));
    }
    // 64 layers in a 44-wide panel: two layers a column.
    let mut big = Metrics::default();
    big.set_sparse_config(cfg(0.7, false));
    big.apply(&Event::Sparsity(SparsitySample {
        active: (0..64).map(|l| 300 + l * 10).collect(),
        n_ff: 2048,
        recall: None,
        bands: (0..64u32)
            .flat_map(|l| (0..8u32).map(move |b| 256u32.saturating_sub(b * 36 + l)))
            .collect(),
        level: 0.7,
        predictor: false,
    }));
    out.push_str("--- 64 layers, 44x13\n");
    out.push_str(&text(&panel_sized(Kind::Sparsity, &big, &th, 44, 13)));
    out.push_str("--- 64 layers, one line, 44 wide\n");
    out.push_str(&text(&panel_line(Kind::Sparsity, &big, &th, 44)));
    // Dense settings, and sparse ones with no token decoded yet.
    for c in [cfg(0.0, false), cfg(0.3, false)] {
        let mut m = Metrics::default();
        m.set_sparse_config(c);
        out.push_str(&format!("--- {c:?}, no sample\n"));
        out.push_str(&text(&panel_full(Kind::Sparsity, &m, &th, 44)));
        out.push_str(&text(&panel_line(Kind::Sparsity, &m, &th, 44)));
    }
    insta::assert_snapshot!(out);
}

/// Under NO_COLOR the strip's shades alone carry the heat: no colours anywhere.
#[test]
fn sparsity_heat_strip_no_color() {
    let th = Theme::select("default", true).unwrap();
    let m = heat_app(th.clone()).metrics;
    let buf = panel_sized(Kind::Sparsity, &m, &th, 44, 13);
    for cell in buf.content() {
        assert_eq!(cell.fg, ratatui::style::Color::Reset, "{cell:?}");
        assert_eq!(cell.bg, ratatui::style::Color::Reset, "{cell:?}");
    }
    insta::assert_snapshot!(text(&buf));
    insta::assert_debug_snapshot!(buf);
}

/// While the engine calibrates a profile its notes go to the chat and its progress to the status
/// line; the answer to the request ends both.
#[test]
fn calibration_shows_in_chat_and_status() {
    let mut app = new_app(theme("default"));
    app.set_sparsity_in_force(cfg(0.0, false));
    app.on_key(KeyEvent::new(KeyCode::Char(']'), KeyModifiers::NONE));
    app.apply(Feed::Chat(ChatEvent::CalibrationNote {
        text: "no sparsity profile for this model yet: calibrating it now (once)".into(),
    }));
    app.apply(Feed::Chat(ChatEvent::CalibrationProgress {
        stage: "pass 1/2: activations".into(),
        done: 37,
        total: 100,
    }));
    let screen = text(draw(&app, 80, 24).backend().buffer());
    assert!(screen.contains("calibrating it now"), "{screen}");
    assert!(
        screen.contains("● calibrating: pass 1/2: activations 37%"),
        "{screen}"
    );
    // A message sent meanwhile waits, and says so.
    type_str(&mut app, "hi");
    assert_eq!(enter(&mut app), vec![super::app::Effect::Send("hi".into())]);
    assert!(app.flash.as_deref().unwrap().contains("calibration"));
    app.apply(Feed::Chat(ChatEvent::Sparsity {
        level: 0.1,
        predictor: false,
        error: None,
    }));
    assert!(app.preparing.is_none() && app.flash.is_none());
    let screen = text(draw(&app, 120, 40).backend().buffer());
    assert!(
        screen.contains("FFN · sparsity 0.1 · predictor off"),
        "{screen}"
    );
}

/// What the worker tells of an 80 MiB budget on SmolLM2 at `-c 512`, dense (11 of 30 FFN layers
/// resident) or at sparsity 0.5 (a neuron cache).
fn budget_state(mib: u64, sparse: bool) -> BudgetState {
    BudgetState {
        budget: Some(mib << 20),
        fixed: if sparse { 70_464_307 } else { 65_257_472 },
        fixed_parts: "62.2 MiB (weights outside the FFN 44.6 MiB, KV cache 11.2 MiB, predictor 0.0 MiB, buffers 2.2 MiB, FFN staging 4.2 MiB)".into(),
        n_layer: 30,
        resident_layers: if sparse { 0 } else { 11 },
        neurons: sparse.then_some(NeuronCacheState {
            hot_per_layer: 335,
            n_ff: 1536,
            cold_slots: 3072,
            bytes: 17_511_219,
        }),
        removable: false,
    }
}

fn budget_event(state: BudgetState, why: BudgetWhy, error: Option<&str>) -> Feed {
    Feed::Chat(ChatEvent::Budget {
        state,
        why,
        error: error.map(str::to_string),
    })
}

/// `/budget`, `+` and `-` become engine requests; the answers set what the chat and panels say,
/// and a refusal is an error line that loses nothing.
#[test]
fn budget_requests_and_answers() {
    use super::app::{Effect, Role};
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    let mut app = new_app(theme("default"));
    // Before the engine tells anything, and without a budget: `+` and `-` say how to set one.
    assert!(app.on_key(key('-')).is_empty());
    let flash = app.flash.clone().unwrap();
    assert!(
        flash.contains("no memory budget") && flash.contains("/budget 80M"),
        "{flash}"
    );
    assert!(flash.contains("type a space first"), "{flash}");
    assert!(app.input.text().is_empty());
    // A session started without a budget: `/budget` says so, with the minimum.
    let mut none = budget_state(80, false);
    none.budget = None;
    none.removable = true;
    app.apply(budget_event(none, BudgetWhy::Start, None));
    assert!(
        app.messages.is_empty(),
        "no notice at startup without a budget"
    );
    type_str(&mut app, "/budget");
    assert!(enter(&mut app).is_empty());
    let text = &app.messages.last().unwrap().text;
    assert!(
        text.starts_with("no memory budget: the whole model is in memory"),
        "{text}"
    );
    assert!(
        text.contains("at least about 63M") && text.contains("step it by 5%"),
        "{text}"
    );
    // `/budget 80M`: a request; the chat line comes with the answer.
    type_str(&mut app, "/budget 80M");
    assert_eq!(enter(&mut app), vec![Effect::Budget(Some(80 << 20))]);
    assert!(app.input.text().is_empty());
    assert!(app.flash.as_deref().unwrap().contains("80 MiB"));
    app.apply(budget_event(
        budget_state(80, false),
        BudgetWhy::Request,
        None,
    ));
    let last = app.messages.last().unwrap();
    assert_eq!(last.role, Role::Notice);
    assert_eq!(
        last.text,
        "now memory budget 80.0 MiB: fixed region 62.2 MiB; 11 of 30 FFN layers resident, the rest streamed from the model file"
    );
    assert_eq!(app.metrics.budget, Some(Some(80 << 20)));
    // `+` and `-` (in the empty input too) step by 5% from what was last asked.
    assert_eq!(app.on_key(key('+')), vec![Effect::Budget(Some(84 << 20))]);
    assert_eq!(app.on_key(key('+')), vec![Effect::Budget(Some(88 << 20))]);
    assert_eq!(app.on_key(key('-')), vec![Effect::Budget(Some(84 << 20))]);
    // The first answer does not undo the later steps.
    app.apply(budget_event(
        budget_state(84, false),
        BudgetWhy::Request,
        None,
    ));
    app.apply(budget_event(
        budget_state(88, false),
        BudgetWhy::Request,
        None,
    ));
    assert_eq!(app.budget_wanted, Some(84 << 20));
    app.apply(budget_event(
        budget_state(84, false),
        BudgetWhy::Request,
        None,
    ));
    assert_eq!(app.budget_wanted, Some(84 << 20));
    assert_eq!(app.budget_pending, 0);
    // Down to the minimum (the fixed region rounded up to whole MiB), and no further.
    assert_eq!(app.on_key(key('-')), vec![Effect::Budget(Some(80 << 20))]);
    assert_eq!(app.on_key(key('-')), vec![Effect::Budget(Some(76 << 20))]);
    assert_eq!(app.on_key(key('-')), vec![Effect::Budget(Some(72 << 20))]);
    assert_eq!(app.on_key(key('-')), vec![Effect::Budget(Some(68 << 20))]);
    assert_eq!(app.on_key(key('-')), vec![Effect::Budget(Some(65 << 20))]);
    assert_eq!(app.on_key(key('-')), vec![Effect::Budget(Some(63 << 20))]);
    assert!(app.on_key(key('-')).is_empty());
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .contains("at its minimum, 63 MiB"));
    for b in [80, 76, 72, 68, 65, 63] {
        app.apply(budget_event(
            budget_state(b, false),
            BudgetWhy::Request,
            None,
        ));
    }
    // Too small: refused by the engine, an error line with the minimum, the budget unchanged.
    type_str(&mut app, "/budget 1M");
    assert_eq!(enter(&mut app), vec![Effect::Budget(Some(1 << 20))]);
    app.apply(budget_event(
        budget_state(63, false),
        BudgetWhy::Request,
        Some("a memory budget of 1.0 MiB is below what this model needs resident at this context: 62.2 MiB (…). Use /budget 63M or more (or a smaller context with -c)"),
    ));
    let last = app.messages.last().unwrap();
    assert_eq!(last.role, Role::Error);
    assert!(last
        .text
        .starts_with("cannot change the memory budget: a memory budget of 1.0 MiB"));
    assert!(
        last.text.contains("Use /budget 63M or more"),
        "{}",
        last.text
    );
    assert!(
        last.text.ends_with("with -c); still a budget of 63 MiB"),
        "{}",
        last.text
    );
    assert_eq!(app.budget_wanted, Some(63 << 20));
    // A bad size never reaches the engine and stays in the input to be fixed.
    type_str(&mut app, "/budget lots");
    assert!(enter(&mut app).is_empty());
    let last = app.messages.last().unwrap();
    assert_eq!(last.role, Role::Error);
    assert!(
        last.text.contains("cannot read 'lots' as a size"),
        "{}",
        last.text
    );
    assert_eq!(app.input.take(), "/budget lots");
    // `/budget off`, refused for a model opened with a budget.
    type_str(&mut app, "/budget off");
    assert_eq!(enter(&mut app), vec![Effect::Budget(None)]);
    app.apply(budget_event(
        budget_state(63, false),
        BudgetWhy::Request,
        Some("this model was opened for a memory budget (its FFN weights are not in memory): keep a budget"),
    ));
    assert!(app.messages.last().unwrap().text.contains("keep a budget"));
    // `/budget` with a budget: the budget, the fixed region's parts, how to change it.
    type_str(&mut app, "/budget");
    assert!(enter(&mut app).is_empty());
    let text = &app.messages.last().unwrap().text;
    assert!(
        text.starts_with("memory budget 63.0 MiB: fixed region 62.2 MiB;"),
        "{text}"
    );
    assert!(
        text.contains("Fixed region: 62.2 MiB (weights outside the FFN"),
        "{text}"
    );
    assert!(text.contains("cannot be lifted"), "{text}");
    // With text in the input `+` and `-` type.
    type_str(&mut app, "a-b+");
    assert_eq!(app.input.take(), "a-b+");
    // During an answer a change waits for its end, and its answer does not split the answer.
    type_str(&mut app, "hi");
    assert_eq!(enter(&mut app), vec![Effect::Send("hi".into())]);
    app.focus = Focus::Panels;
    assert_eq!(app.on_key(key('+')), vec![Effect::Budget(Some(66 << 20))]);
    assert!(app.flash.as_deref().unwrap().contains("after this answer"));
    assert!(!app.flash.as_deref().unwrap().contains("space first"));
    app.apply(Feed::Chat(ChatEvent::Token { text: "Hel".into() }));
    app.apply(budget_event(
        budget_state(66, false),
        BudgetWhy::Request,
        None,
    ));
    app.apply(Feed::Chat(ChatEvent::Token { text: "lo".into() }));
    assert_eq!(app.messages.last().unwrap().text, "Hello");
    assert!(app.messages[app.messages.len() - 2]
        .text
        .starts_with("now memory budget 66.0 MiB"));
    // A sparsity change made the worker set the budget again: it says how the budget is used now.
    app.apply(budget_event(
        budget_state(66, true),
        BudgetWhy::Sparsity,
        None,
    ));
    let text = &app.messages[app.messages.len() - 2].text;
    assert!(
        text.starts_with("budget set again for the new sparsity: memory budget 66.0 MiB"),
        "{text}"
    );
    assert!(
        text.contains("the hottest 335 of 1536 neurons per layer"),
        "{text}"
    );
    // A replay has no engine to change.
    app.mode = Mode::Replay {
        file: "x".into(),
        speed: 1.0,
        finished: true,
    };
    app.generating = false;
    assert!(app.on_key(key('+')).is_empty());
    app.focus = Focus::Input;
    type_str(&mut app, "/budget 90M");
    assert!(enter(&mut app).is_empty());
    assert!(app.flash.as_deref().unwrap().starts_with("replay"));
}

/// A budget at startup is told in the chat; writing the neuron bundle shows in the chat and the
/// status line until the answer.
#[test]
fn budget_at_start_and_bundle_progress() {
    let mut app = new_app(theme("default"));
    app.apply(budget_event(budget_state(80, true), BudgetWhy::Start, None));
    assert_eq!(app.budget_wanted, Some(80 << 20));
    assert!(app.messages[0].text.starts_with("memory budget 80.0 MiB: fixed region 67.2 MiB; neuron cache: the hottest 335 of 1536 neurons per layer in memory, 3072 cold slots"));
    type_str(&mut app, "/budget 90M");
    enter(&mut app);
    app.apply(Feed::Chat(ChatEvent::BundleNote {
        text: "writing the neuron bundle for this model and profile (once)".into(),
    }));
    app.apply(Feed::Chat(ChatEvent::BundleProgress {
        done: 12,
        total: 30,
    }));
    let screen = text(draw(&app, 80, 24).backend().buffer());
    assert!(
        screen.contains("writing the neuron bundle for this model"),
        "{screen}"
    );
    assert!(
        screen.contains("● writing the neuron bundle: 40% (12/30 layers)"),
        "{screen}"
    );
    // A message sent meanwhile waits, and says for what.
    type_str(&mut app, "hi");
    enter(&mut app);
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .contains("the neuron bundle is written"));
    app.apply(budget_event(
        budget_state(90, true),
        BudgetWhy::Request,
        None,
    ));
    assert!(app.preparing.is_none());
}

/// Metrics as sparse decode (`sparse`) or dense layer streaming under an 80 MiB budget send them,
/// with the worker's state; the host sampled.
fn budget_metrics(sparse: bool) -> Metrics {
    let mut app = new_app(theme("default"));
    app.apply(budget_event(
        budget_state(80, sparse),
        BudgetWhy::Start,
        None,
    ));
    let mut m = app.metrics;
    m.apply(&session());
    for i in 0..40u64 {
        let (hits, misses, read, used, hot, cold) = if sparse {
            (
                44_879 - i % 3 * 900,
                1_201 + i % 3 * 900,
                47_991_960 + i % 3 * 1_198_800,
                34_829,
                13_386_600,
                7_409_664,
            )
        } else {
            (11, 19, 31_518_720, 19, 18_247_680, 3_317_760)
        };
        m.apply(&Event::Cache(CacheSample {
            hits,
            misses,
            bytes_read: read,
            prefetch_used: used,
            prefetch_wasted: if sparse { i % 4 * 10 } else { 0 },
            hot_bytes: hot,
            cold_bytes: cold,
        }));
        m.apply(&Event::Io(IoSample {
            queue_depth: (i % 3) as u32,
            in_flight: 3 - (i % 2) as u32,
            read_latency_us: 2_000.0 + (i % 5) as f32 * 450.0,
            bytes_read: read,
        }));
        m.apply(&Event::Memory(MemorySample {
            resident: if sparse { 83_849_320 } else { 83_460_000 },
            budget: Some(80 << 20),
        }));
        m.apply(&Event::Token(TokenSample {
            phase: Phase::Decode,
            tokens: 1,
            micros: 60_000 + i % 6 * 6_000,
            pos: 20 + i as u32,
        }));
    }
    m.apply_host(HostSample {
        cpu: vec![97.0, 88.5],
        rss: 96 << 20,
        interval_s: 0.5,
    });
    m
}

/// The cache, I/O and memory panels under a budget, full and one-line, at a narrow and a wide
/// column: sparse decode's neuron cache, dense layer streaming, a budget with no token decoded
/// yet, and none. Under NO_COLOR, so no colour anywhere.
#[test]
fn budget_panels_no_color() {
    let th = Theme::select("default", true).unwrap();
    let mut waiting = new_app(th.clone());
    waiting.apply(budget_event(
        budget_state(80, false),
        BudgetWhy::Start,
        None,
    ));
    waiting.apply(Feed::Host(host()));
    let mut none = new_app(th.clone());
    let mut st = budget_state(80, false);
    st.budget = None;
    none.apply(budget_event(st, BudgetWhy::Start, None));
    none.apply(Feed::Host(host()));
    let cases = [
        ("sparsity 0.5, 80 MiB budget", budget_metrics(true)),
        ("dense, 80 MiB budget", budget_metrics(false)),
        ("80 MiB budget, no token yet", waiting.metrics),
        ("no budget", none.metrics),
    ];
    let mut out = String::new();
    for (label, m) in &cases {
        for w in [32, 60] {
            out.push_str(&format!("--- {label}, {w} wide\n"));
            for kind in [Kind::Cache, Kind::Io, Kind::Memory] {
                let full = panel_full(kind, m, &th, w);
                let line = panel_line(kind, m, &th, w);
                for buf in [&full, &line] {
                    for cell in buf.content() {
                        assert_eq!(cell.fg, ratatui::style::Color::Reset, "{cell:?}");
                        assert_eq!(cell.bg, ratatui::style::Color::Reset, "{cell:?}");
                    }
                }
                out.push_str(&text(&full));
                out.push_str(&text(&line));
            }
        }
    }
    insta::assert_snapshot!(out);
}

/// The whole app under a budget with real-shaped samples, at 45×20 (one-line gauges under the
/// chat) and 160×50, under NO_COLOR.
#[test]
fn budget_app_no_color() {
    let th = Theme::select("default", true).unwrap();
    let mut app = busy_app(th);
    app.apply(budget_event(
        budget_state(80, false),
        BudgetWhy::Request,
        None,
    ));
    app.metrics = budget_metrics(false);
    for (w, h) in [(45, 20), (160, 50)] {
        let t = draw(&app, w, h);
        for cell in t.backend().buffer().content() {
            assert_eq!(cell.fg, ratatui::style::Color::Reset, "{cell:?}");
        }
        insta::assert_snapshot!(format!("budget_app_{w}x{h}"), text(t.backend().buffer()));
    }
}

/// TABs, escape sequences and other control characters in every kind of text the app draws (the
/// person's message, the answer, a notice, an error, the model name, the input box): expanded
/// or shown as pictures, and the cursor after the input's TAB where it is drawn. Nothing in the
/// frame is a control character, so nothing can act on the terminal.
#[test]
fn control_characters_are_shown_not_obeyed_80x24() {
    let mut app = App::new(
        theme("default"),
        Mode::Live,
        "evil\tmodel\u{1b}[31m".into(),
        "greedy\r".into(),
        4096,
    );
    app.apply(Feed::Chat(ChatEvent::User {
        text: "col\tumns\n\tindented".into(),
    }));
    app.apply(Feed::Chat(ChatEvent::Token {
        text: "a\tb\u{1b}[2J\u{7}c\rd\u{7f}e\u{9b}f".into(),
    }));
    app.apply(Feed::Chat(ChatEvent::Error {
        message: "cannot read /tmp/we\tird\u{1b}]0;title\u{7}.gguf".into(),
    }));
    app.on_paste("x\ty\u{1b}z");
    let mut t = draw(&app, 80, 24);
    let buf = t.backend().buffer().clone();
    for cell in buf.content.iter() {
        assert!(
            !cell.symbol().chars().any(char::is_control),
            "a control character reached the frame: {:?}",
            cell.symbol()
        );
    }
    // The cursor is after what the input shows ("x   y␛z"), inside the box.
    let pos = t.get_cursor_position().unwrap();
    let row: String = (0..80)
        .map(|x| buf[(x, pos.y)].symbol().to_string())
        .collect();
    assert!(row.starts_with("│x   y␛z "), "{row}");
    assert_eq!(pos.x, 1 + 7, "{row}");
    insta::assert_snapshot!(text(&buf));
}
