//! Taking over the terminal and always giving it back: on a normal exit, on an error (the guard's
//! `Drop`), on a panic (a hook that restores before the panic message prints) and on SIGINT,
//! SIGQUIT, SIGTERM or SIGHUP (the event loop exits through the same path, see
//! [`super::signals`]). Suspending (SIGTSTP, Ctrl+Z) gives it back and [`Tui::resume`] takes it
//! again. Restoring twice is harmless.

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    KeyboardEnhancementFlags, PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::{cursor, execute};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::{stdout, Stdout};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// What was turned on, so restore turns off exactly that (bit flags).
static ACTIVE: AtomicU8 = AtomicU8::new(0);
const RAW: u8 = 1;
const MOUSE: u8 = 2;
const KEYBOARD: u8 = 4;
static HOOK: AtomicBool = AtomicBool::new(false);

/// Owns the terminal while the UI runs; dropping it restores the terminal.
pub struct Tui {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
    /// The terminal reports Shift+Enter (kitty keyboard protocol).
    pub shift_enter: bool,
    /// Mouse reporting was asked for (not `--no-mouse`).
    mouse: bool,
}

impl Tui {
    pub fn enter(mouse: bool) -> anyhow::Result<Tui> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.fetch_or(RAW, Ordering::SeqCst);
        let mut out = stdout();
        execute!(
            out,
            EnterAlternateScreen,
            EnableBracketedPaste,
            cursor::Hide
        )?;
        if mouse {
            execute!(out, EnableMouseCapture)?;
            ACTIVE.fetch_or(MOUSE, Ordering::SeqCst);
        }
        // Shift+Enter is only distinguishable from Enter with the kitty keyboard protocol.
        let shift_enter = matches!(
            crossterm::terminal::supports_keyboard_enhancement(),
            Ok(true)
        );
        if shift_enter {
            execute!(
                out,
                PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES)
            )?;
            ACTIVE.fetch_or(KEYBOARD, Ordering::SeqCst);
        }
        let terminal = Terminal::new(CrosstermBackend::new(stdout()))?;
        Ok(Tui {
            terminal,
            shift_enter,
            mouse,
        })
    }

    /// Gives the terminal back and stops the process (SIGTSTP, Ctrl+Z); once continued (`fg`),
    /// takes it again and redraws.
    pub fn suspend(&mut self) -> std::io::Result<()> {
        restore();
        super::signals::stop_self();
        self.resume()
    }

    /// Takes the terminal again after a stop, whatever the shell did to it meanwhile, and clears
    /// ratatui's idea of the screen so the next draw repaints everything. Harmless when the
    /// terminal is already ours (SIGCONT after [`Tui::suspend`] resumed).
    pub fn resume(&mut self) -> std::io::Result<()> {
        // crossterm skips enabling raw mode when it believes it is on; the shell may have put the
        // terminal back to cooked mode while the process was stopped, so turn it off first.
        if ACTIVE.load(Ordering::SeqCst) & RAW != 0 {
            let _ = disable_raw_mode();
        }
        enable_raw_mode()?;
        ACTIVE.fetch_or(RAW, Ordering::SeqCst);
        let mut out = stdout();
        execute!(
            out,
            EnterAlternateScreen,
            EnableBracketedPaste,
            cursor::Hide
        )?;
        if self.mouse {
            execute!(out, EnableMouseCapture)?;
            ACTIVE.fetch_or(MOUSE, Ordering::SeqCst);
        }
        if self.shift_enter && ACTIVE.load(Ordering::SeqCst) & KEYBOARD == 0 {
            execute!(
                out,
                PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES)
            )?;
            ACTIVE.fetch_or(KEYBOARD, Ordering::SeqCst);
        }
        self.terminal.clear()
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back as it was. Safe to call at any time, any number of times.
pub fn restore() {
    let active = ACTIVE.swap(0, Ordering::SeqCst);
    if active == 0 {
        return;
    }
    let mut out = stdout();
    if active & KEYBOARD != 0 {
        let _ = execute!(out, PopKeyboardEnhancementFlags);
    }
    if active & MOUSE != 0 {
        let _ = execute!(out, DisableMouseCapture);
    }
    let _ = execute!(
        out,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        cursor::Show
    );
    if active & RAW != 0 {
        let _ = disable_raw_mode();
    }
}

/// Restores the terminal before the default hook prints the panic, so the message is readable
/// and the shell is usable afterwards.
fn install_panic_hook() {
    if HOOK.swap(true, Ordering::SeqCst) {
        return;
    }
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        prev(info);
    }));
}
