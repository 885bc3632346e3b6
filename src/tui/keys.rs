//! The key map: which key does what, depending on the focus. Every action is reachable with keys
//! on Termux's extra-keys row (Esc, Tab, Ctrl, Alt, arrows, PgUp/PgDn, Home/End, `-`, `/`).
//! Letters and symbols that act on the panels (`?`, `p`, `t`, `q`) type text while the input box
//! has the focus, so they act there only with Alt; Tab moves the focus to the chat or the panels,
//! where they act alone.
//!
//! `[` and `]` step the sparsity, `+` (or `=`) and `-` the memory budget. They also act in the
//! input box while it is empty (a message rarely starts with one: type a space first for one),
//! because Alt+`[` is the start of an escape sequence that terminals do not deliver as a key.
//! Once something is typed they type text. The brackets are not on Termux's extra-keys row; there
//! `/sparsity X` (with `/` from the row) does the same. `-` is on the row and `+` on the
//! on-screen keyboard's symbols; `/budget SIZE` works everywhere.

use super::app::Focus;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Ctrl+C: stop the answer, or (pressed twice when idle) quit.
    Interrupt,
    /// Ctrl+Z: back to the shell (`fg` returns), as in other full-screen programs.
    Suspend,
    Quit,
    CloseOverlay,
    Help,
    NextFocus,
    PrevFocus,
    Pause,
    Theme,
    /// `+` (1) or `-` (-1): the memory budget up or down a step.
    Budget(i32),
    /// `]` (1) or `[` (-1): the sparsity up or down a step.
    SparsityStep(i32),
    /// Positive scrolls up (back in time).
    ScrollLines(i32),
    ScrollPages(i32),
    ScrollTop,
    ScrollBottom,
    /// Scroll the help overlay (on small screens it does not fit).
    HelpScroll(i32),
    Submit,
    Newline,
    Type(char),
    Backspace,
    Delete,
    Left,
    Right,
    Up,
    Down,
    LineStart,
    LineEnd,
    ClearInput,
}

/// Every key, as the help overlay lists it.
pub const HELP: &[(&str, &str)] = &[
    ("Enter", "send the message"),
    (
        "Alt+Enter, Ctrl+J",
        "new line (also Shift+Enter where reported)",
    ),
    ("Ctrl+C", "stop the answer; twice when idle: quit"),
    ("Ctrl+Z", "suspend to the shell (fg comes back)"),
    ("PgUp / PgDn", "scroll the chat a page"),
    ("Home / End", "top / bottom of the chat"),
    (
        "wheel, ↑ / ↓",
        "scroll the chat (↑↓ move lines in the input)",
    ),
    ("Tab / Shift+Tab", "focus: input → chat → panels"),
    ("Esc", "close this help; focus back to the input"),
    ("↑ ↓ PgUp PgDn", "scroll this help"),
    ("? or Alt+?", "this help"),
    ("p or Alt+p", "pause / resume the panels"),
    ("t or Alt+t", "next colour theme"),
    ("+ -", "memory budget ±5% (input: only when empty)"),
    ("[ ]", "sparsity -/+ 0.1 (input: only when empty)"),
    ("q", "quit (focus on chat or panels)"),
    ("Ctrl+A / Ctrl+E", "start / end of the input line"),
    ("Ctrl+U", "clear the input"),
];

/// Maps a key to an action; `None` for keys that do nothing. `input_empty`: nothing is typed in
/// the input box (where `[`, `]`, `+` and `-` then act).
pub fn map(key: KeyEvent, focus: Focus, help_open: bool, input_empty: bool) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let shift = key.modifiers.contains(KeyModifiers::SHIFT);
    use Action::*;
    if ctrl {
        return match key.code {
            KeyCode::Char('c') => Some(Interrupt),
            KeyCode::Char('z') => Some(Suspend),
            KeyCode::Char('j') if !help_open => Some(Newline),
            KeyCode::Char('a') => Some(LineStart),
            KeyCode::Char('e') => Some(LineEnd),
            KeyCode::Char('u') => Some(ClearInput),
            KeyCode::Home => Some(ScrollTop),
            KeyCode::End => Some(ScrollBottom),
            _ => None,
        };
    }
    if help_open {
        return match key.code {
            KeyCode::Esc | KeyCode::Enter | KeyCode::Char('?') | KeyCode::Char('q') => {
                Some(CloseOverlay)
            }
            KeyCode::Up => Some(HelpScroll(-1)),
            KeyCode::Down => Some(HelpScroll(1)),
            KeyCode::PageUp => Some(HelpScroll(-10)),
            KeyCode::PageDown => Some(HelpScroll(10)),
            _ => None,
        };
    }
    // Keys that act the same everywhere.
    match key.code {
        KeyCode::Esc => return Some(CloseOverlay),
        KeyCode::Tab => return Some(NextFocus),
        KeyCode::BackTab => return Some(PrevFocus),
        KeyCode::PageUp => return Some(ScrollPages(1)),
        KeyCode::PageDown => return Some(ScrollPages(-1)),
        KeyCode::Home => return Some(ScrollTop),
        KeyCode::End => return Some(ScrollBottom),
        KeyCode::F(1) => return Some(Help),
        _ => {}
    }
    if alt || focus != Focus::Input || input_empty {
        match key.code {
            KeyCode::Char('[') => return Some(SparsityStep(-1)),
            KeyCode::Char(']') => return Some(SparsityStep(1)),
            KeyCode::Char('+' | '=') => return Some(Budget(1)),
            KeyCode::Char('-') => return Some(Budget(-1)),
            _ => {}
        }
    }
    if let KeyCode::Char(c) = key.code {
        if alt || focus != Focus::Input {
            if let Some(a) = panel_key(c) {
                return Some(a);
            }
        }
        if c == 'q' && focus != Focus::Input && !alt {
            return Some(Quit);
        }
        if alt {
            return None;
        }
    }
    match (focus, key.code) {
        (_, KeyCode::Enter) if alt || shift => Some(Newline),
        (Focus::Input, KeyCode::Enter) => Some(Submit),
        (_, KeyCode::Enter) => Some(CloseOverlay),
        (Focus::Input, KeyCode::Up) => Some(Up),
        (Focus::Input, KeyCode::Down) => Some(Down),
        (_, KeyCode::Up) => Some(ScrollLines(1)),
        (_, KeyCode::Down) => Some(ScrollLines(-1)),
        (_, KeyCode::Char(c)) => Some(Type(c)),
        (_, KeyCode::Backspace) => Some(Backspace),
        (_, KeyCode::Delete) => Some(Delete),
        (_, KeyCode::Left) => Some(Left),
        (_, KeyCode::Right) => Some(Right),
        _ => None,
    }
}

fn panel_key(c: char) -> Option<Action> {
    Some(match c {
        '?' => Action::Help,
        'p' => Action::Pause,
        't' => Action::Theme,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn panel_keys_type_text_in_the_input_and_act_elsewhere() {
        let none = KeyModifiers::NONE;
        for (c, a) in [
            ('?', Action::Help),
            ('p', Action::Pause),
            ('t', Action::Theme),
        ] {
            assert_eq!(
                map(k(KeyCode::Char(c), none), Focus::Input, false, true),
                Some(Action::Type(c))
            );
            assert_eq!(
                map(k(KeyCode::Char(c), none), Focus::Panels, false, true),
                Some(a)
            );
            assert_eq!(
                map(k(KeyCode::Char(c), none), Focus::Chat, false, true),
                Some(a)
            );
            assert_eq!(
                map(
                    k(KeyCode::Char(c), KeyModifiers::ALT),
                    Focus::Input,
                    false,
                    false
                ),
                Some(a)
            );
        }
        assert_eq!(
            map(k(KeyCode::Char('q'), none), Focus::Panels, false, true),
            Some(Action::Quit)
        );
    }

    #[test]
    fn enter_sends_and_its_variants_make_newlines() {
        let f = Focus::Input;
        assert_eq!(
            map(k(KeyCode::Enter, KeyModifiers::NONE), f, false, true),
            Some(Action::Submit)
        );
        for m in [KeyModifiers::ALT, KeyModifiers::SHIFT] {
            assert_eq!(
                map(k(KeyCode::Enter, m), f, false, false),
                Some(Action::Newline)
            );
        }
        assert_eq!(
            map(
                k(KeyCode::Char('j'), KeyModifiers::CONTROL),
                f,
                false,
                false
            ),
            Some(Action::Newline)
        );
        assert_eq!(
            map(k(KeyCode::Char('c'), KeyModifiers::CONTROL), f, true, true),
            Some(Action::Interrupt)
        );
        assert_eq!(
            map(k(KeyCode::Esc, KeyModifiers::NONE), f, true, true),
            Some(Action::CloseOverlay)
        );
    }

    #[test]
    fn ctrl_z_suspends_from_anywhere() {
        let z = k(KeyCode::Char('z'), KeyModifiers::CONTROL);
        for f in [Focus::Input, Focus::Chat, Focus::Panels] {
            for help in [false, true] {
                assert_eq!(map(z, f, help, false), Some(Action::Suspend));
            }
        }
        assert!(HELP.iter().any(|(key, _)| *key == "Ctrl+Z"));
    }

    #[test]
    fn brackets_and_plus_minus_step_unless_typing() {
        let none = KeyModifiers::NONE;
        for (c, a) in [
            ('[', Action::SparsityStep(-1)),
            (']', Action::SparsityStep(1)),
            ('+', Action::Budget(1)),
            ('=', Action::Budget(1)),
            ('-', Action::Budget(-1)),
        ] {
            let key = k(KeyCode::Char(c), none);
            // In the input box only while it is empty; elsewhere always.
            assert_eq!(map(key, Focus::Input, false, true), Some(a), "{c}");
            assert_eq!(map(key, Focus::Input, false, false), Some(Action::Type(c)));
            for f in [Focus::Chat, Focus::Panels] {
                assert_eq!(map(key, f, false, false), Some(a));
            }
            // With Alt in a non-empty input too (where the terminal delivers it).
            assert_eq!(
                map(
                    k(KeyCode::Char(c), KeyModifiers::ALT),
                    Focus::Input,
                    false,
                    false
                ),
                Some(a)
            );
            // Not while the help is open.
            assert_eq!(map(key, Focus::Panels, true, true), None);
        }
        // Shifted `+` as some terminals report it.
        assert_eq!(
            map(
                k(KeyCode::Char('+'), KeyModifiers::SHIFT),
                Focus::Input,
                false,
                true
            ),
            Some(Action::Budget(1))
        );
    }
}
