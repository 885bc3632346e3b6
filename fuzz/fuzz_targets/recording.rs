//! The chat recording reader (`sparsetop replay FILE.jsonl`): the text is parsed as the replay
//! parses it, played by the replay's own `play` on a paused tokio clock (so recorded times cost
//! nothing), every item is folded into the app as the event loop does, and the screen is drawn.
//!
//! The reader and the app live in the binary crate, which has no library target. Rather than
//! restructure it, this target compiles the UI modules it needs from their files with `#[path]`,
//! in a `tui` module as in the binary, so `super::` and `crate::tui::` paths resolve unchanged.
//! Only modules that do not reach the terminal, the engine worker or the CLI are included; a
//! module that starts using one of those fails this build with an unresolved path (and
//! `scripts/fuzz` reports it).
#![no_main]
#![allow(dead_code, unused_imports)]

#[path = "app_modules.rs"]
mod tui;
// The flag parsers the slash commands and the replay share (`crate::value_parsers` in the binary).
#[path = "../../src/value_parsers.rs"]
mod value_parsers;

use libfuzzer_sys::fuzz_target;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tui::app::{App, Mode};
use tui::feed::Feed;
use tui::record::Header;
use tui::theme::Theme;

fuzz_target!(|data: &[u8]| {
    // `replay::read` reads the file with `read_to_string`: text that is not UTF-8 is refused there.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((header, lines)) = tui::replay::parse(text, "fuzz.jsonl") else {
        return;
    };
    let header = header.unwrap_or(Header {
        model: "recording".into(),
        sampler: String::new(),
        n_ctx: 0,
    });
    let mut app = App::new(
        Theme::builtin("default").expect("built-in theme"),
        Mode::Replay {
            file: "fuzz.jsonl".into(),
            speed: 1.0,
            finished: false,
        },
        header.model,
        header.sampler,
        header.n_ctx,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    rt.block_on(tui::replay::play(lines, 1.0, tx));
    while let Ok(f) = rx.try_recv() {
        let end = matches!(f, Feed::ReplayEnd);
        app.apply(f);
        if end {
            break;
        }
    }
    for (w, h) in [(80, 24), (45, 20)] {
        let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
        t.draw(|f| tui::ui::draw(f, &app)).expect("draw");
    }
});
