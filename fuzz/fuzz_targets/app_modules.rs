//! The app's UI modules that the `recording` target compiles from their files (see there why),
//! mounted as `tui` so their `super::` and `crate::tui::` paths resolve as in the binary. Paths are
//! relative to this file's folder.

#[path = "../../src/tui/app.rs"]
pub mod app;
#[path = "../../src/tui/chat_view.rs"]
pub mod chat_view;
#[path = "../../src/tui/feed.rs"]
pub mod feed;
#[path = "../../src/tui/input.rs"]
pub mod input;
#[path = "../../src/tui/keys.rs"]
pub mod keys;
#[path = "../../src/tui/layout.rs"]
pub mod layout;
#[path = "../../src/tui/metrics.rs"]
pub mod metrics;
#[path = "../../src/tui/panels/mod.rs"]
pub mod panels;
#[path = "../../src/tui/record.rs"]
pub mod record;
#[path = "../../src/tui/replay.rs"]
pub mod replay;
#[path = "../../src/tui/safe_text.rs"]
pub mod safe_text;
#[path = "../../src/tui/series.rs"]
pub mod series;
#[path = "../../src/tui/slash.rs"]
pub mod slash;
#[path = "../../src/tui/theme.rs"]
pub mod theme;
#[path = "../../src/tui/transcript.rs"]
pub mod transcript;
#[path = "../../src/tui/ui.rs"]
pub mod ui;
