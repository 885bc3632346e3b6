//! The app's state and how keys, mouse and feed items change it. Nothing here touches the terminal
//! or the engine: key handling returns [`Effect`]s that the event loop carries out, so the whole
//! app can be driven and drawn in tests.

use super::feed::{BudgetState, BudgetWhy, ChatEvent, Feed};
use super::input::Input;
use super::keys::{self, Action};
use super::metrics::Metrics;
use super::panels::sparsity::describe as sparsity_words;
use super::slash::{self, BudgetArg, Slash};
use super::theme::Theme;
use super::transcript;
use crossterm::event::{KeyEvent, MouseEvent, MouseEventKind};
use sparsetop_engine::sparse::SparsityConfig;
use std::cell::Cell;

/// Which part of the screen keys go to. Panel keys (`?`, `p`, `t`, `q`, `[`, `]`, `+`, `-`) act
/// when the focus is not on the input box, where they type text; with Alt they act anywhere.
/// `[`, `]`, `+` and `-` also act in the input box while it is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Input,
    Chat,
    Panels,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    Notice,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub text: String,
}

/// Live chat with the engine, or playback of a recording.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Live,
    Replay {
        file: String,
        speed: f64,
        finished: bool,
    },
}

/// What the event loop must do after a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Ask the engine to answer this message.
    Send(String),
    /// Stop the answer being generated.
    Stop,
    /// Forget the conversation.
    Clear,
    /// Set the system message.
    System(String),
    /// Change sparse decode's level and predictor use.
    Sparsity(SparsityConfig),
    /// Set (bytes) or lift (`None`) the memory budget.
    Budget(Option<u64>),
    /// Give the terminal back and stop, as Ctrl+Z does in other full-screen programs.
    Suspend,
    Quit,
}

/// Outcome of the last answer, for the status line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastAnswer {
    pub generated: usize,
    pub gen_tok_s: f64,
    pub prompt_tok_s: f64,
}

pub struct App {
    pub theme: Theme,
    pub mode: Mode,
    pub model: String,
    /// Sampler settings as the status line shows them.
    pub sampler: String,
    pub n_ctx: usize,
    pub ctx_used: usize,
    pub messages: Vec<Message>,
    pub input: Input,
    pub focus: Focus,
    /// Chat lines scrolled up from the bottom (0 follows new text).
    pub scroll: usize,
    pub generating: bool,
    pub last: Option<LastAnswer>,
    pub help: bool,
    pub help_scroll: u16,
    /// The panels' data; while paused, `frozen` holds what they show.
    pub metrics: Metrics,
    pub frozen: Option<Metrics>,
    /// A Ctrl+C was pressed while idle (or stopped an answer): the next one quits.
    pub quit_armed: bool,
    /// A one-line notice in the hint bar, cleared by the next key.
    pub flash: Option<String>,
    /// The terminal reports Shift+Enter (kitty keyboard protocol).
    pub shift_enter: bool,
    pub should_quit: bool,
    /// Files this chat reads or writes (the model, its profile, the recording): `/save` never
    /// writes over them.
    pub inputs: Vec<std::path::PathBuf>,
    /// Height and total wrapped lines of the chat view at the last draw, for paging.
    pub chat_view: Cell<(usize, usize)>,
    /// Sparse decode settings last asked of the engine, which `[` and `]` step from (the ones in
    /// force are `metrics.sparse_config`), and how many such requests it has not answered yet:
    /// answers to earlier ones must not undo a step pressed since.
    pub sparse_wanted: SparsityConfig,
    pub sparse_pending: usize,
    /// While the engine prepares something between answers (a sparsity profile, a neuron
    /// bundle): what, and how far it is, for the status line.
    pub preparing: Option<(Prep, String)>,
    /// The memory budget in force and how it is used, as the engine last told (`None` until it
    /// does, and in replays of older recordings).
    pub budget: Option<BudgetState>,
    /// The budget last asked of the engine, which `+` and `-` step from, and how many budget
    /// requests it has not answered yet (as for sparsity).
    pub budget_wanted: Option<u64>,
    pub budget_pending: usize,
}

/// What the engine prepares before it can apply a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prep {
    /// Calibrating a sparsity profile (about a minute).
    Calibration,
    /// Writing the neuron bundle that sparse decode reads under a memory budget.
    Bundle,
}

impl Prep {
    /// When what waits for it can go on.
    fn until(self) -> &'static str {
        match self {
            Prep::Calibration => "the calibration is done",
            Prep::Bundle => "the neuron bundle is written",
        }
    }
}

/// The step of `+` and `-`: a twentieth of the budget (rounded to whole MiB, at least 1 MiB),
/// so each press changes a small model's or a large model's budget alike.
pub const BUDGET_STEP_PERCENT: u64 = 5;

/// The budget `n` steps (+1 or -1) from `cur`, in whole MiB.
pub fn budget_step(cur: u64, n: i32) -> u64 {
    const MIB: u64 = 1 << 20;
    let cur_mib = (cur + MIB / 2) / MIB;
    let step = ((cur_mib * BUDGET_STEP_PERCENT + 50) / 100).max(1);
    if n >= 0 {
        (cur_mib + step) * MIB
    } else {
        cur_mib.saturating_sub(step).max(1) * MIB
    }
}

/// The step of `[` and `]`.
pub const SPARSITY_STEP: f32 = 0.1;

/// A budget in words: whole MiB when it is one, else with a decimal.
pub fn budget_words(b: u64) -> String {
    if b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else {
        sparsetop_engine::offload::budget::mib(b)
    }
}

/// The budget in force, short, for "still …".
fn budget_short(st: &BudgetState) -> String {
    match st.budget {
        Some(b) => format!("a budget of {}", budget_words(b)),
        None => "no budget".into(),
    }
}

impl App {
    pub fn new(theme: Theme, mode: Mode, model: String, sampler: String, n_ctx: usize) -> Self {
        App {
            theme,
            mode,
            model,
            sampler,
            n_ctx,
            ctx_used: 0,
            messages: Vec::new(),
            input: Input::default(),
            focus: Focus::Input,
            scroll: 0,
            generating: false,
            last: None,
            help: false,
            help_scroll: 0,
            metrics: Metrics::default(),
            frozen: None,
            quit_armed: false,
            flash: None,
            shift_enter: false,
            should_quit: false,
            inputs: Vec::new(),
            chat_view: Cell::new((0, 0)),
            sparse_wanted: SparsityConfig {
                level: 0.0,
                predictor: false,
            },
            sparse_pending: 0,
            preparing: None,
            budget: None,
            budget_wanted: None,
            budget_pending: 0,
        }
    }

    /// The settings the engine runs with now (at startup: the flags').
    pub fn set_sparsity_in_force(&mut self, c: SparsityConfig) {
        if self.sparse_pending == 0 {
            self.sparse_wanted = c;
        }
        self.metrics.set_sparse_config(c);
        // Paused panels keep their data, but their title tells the settings now in force.
        if let Some(f) = &mut self.frozen {
            f.sparse_config = Some(c);
        }
    }

    /// Asks the engine for new sparsity settings.
    fn request_sparsity(&mut self, c: SparsityConfig) -> Vec<Effect> {
        if self.is_replay() {
            self.flash = Some("replay: there is no model to change".into());
            return vec![];
        }
        self.sparse_wanted = c;
        self.sparse_pending += 1;
        self.flash = Some(format!("switching to {}{}", sparsity_words(c), self.when()));
        vec![Effect::Sparsity(c)]
    }

    /// When a change asked now applies: the worker takes requests between answers.
    fn when(&self) -> String {
        if self.generating {
            " after this answer".into()
        } else if let Some((p, _)) = &self.preparing {
            format!(" when {}", p.until())
        } else {
            String::new()
        }
    }

    /// Asks the engine for a memory budget (`None`: none).
    fn request_budget(&mut self, b: Option<u64>) -> Vec<Effect> {
        if self.is_replay() {
            self.flash = Some("replay: there is no model to change".into());
            return vec![];
        }
        self.budget_wanted = b;
        self.budget_pending += 1;
        let what = match b {
            Some(b) => format!("setting the memory budget to {}", budget_words(b)),
            None => "lifting the memory budget".into(),
        };
        self.flash = Some(format!("{what}{}", self.when()));
        vec![Effect::Budget(b)]
    }

    /// `+` (+1) or `-` (-1): the wanted budget moved by [`budget_step`], not below the minimum.
    fn step_budget(&mut self, n: i32) -> Vec<Effect> {
        let typing = if self.focus == Focus::Input {
            " · a message starting with + or -: type a space first"
        } else {
            ""
        };
        if self.is_replay() {
            self.flash = Some("replay: there is no model to change".into());
            return vec![];
        }
        let Some(cur) = self.budget_wanted else {
            self.flash = Some(format!(
                "no memory budget to step: /budget 80M sets one{typing}"
            ));
            return vec![];
        };
        let mut want = budget_step(cur, n);
        if let Some(st) = &self.budget {
            let min = st.min_mib() << 20;
            if n < 0 && want < min {
                if cur <= min {
                    self.flash = Some(format!(
                        "the memory budget is at its minimum, {} MiB: what must stay resident (/budget lists it)",
                        st.min_mib(),
                    ));
                    return vec![];
                }
                want = min;
            }
        }
        let fx = self.request_budget(Some(want));
        if let Some(f) = &mut self.flash {
            f.push_str(typing);
        }
        fx
    }

    /// What `/budget` alone says: the budget in force, its fixed region and how to change it.
    fn budget_notice(&self) -> String {
        let Some(st) = &self.budget else {
            return "memory budget unknown (the engine has not told it). /budget SIZE sets one, e.g. /budget 80M".into();
        };
        let step = format!("+ and - step it by {BUDGET_STEP_PERCENT}%");
        match st.budget {
            None => format!(
                "no memory budget: the whole model is in memory. /budget SIZE sets one (e.g. /budget 80M), then {step}. It must hold the fixed region, {}: at this context at least about {}M. FFN weights beyond it are read from the model file as needed",
                st.fixed_parts,
                st.min_mib(),
            ),
            Some(_) => format!(
                "{}. Fixed region: {}. /budget SIZE changes it (at least {}M), {step}{}",
                st.describe(),
                st.fixed_parts,
                st.min_mib(),
                if st.removable {
                    ", /budget off lifts it"
                } else {
                    " (it cannot be lifted: the model was opened with it, its FFN weights are not in memory)"
                }
            ),
        }
    }

    /// `[` (-1) or `]` (+1): the wanted level moved by [`SPARSITY_STEP`], within 0 to 0.9.
    fn step_sparsity(&mut self, n: i32) -> Vec<Effect> {
        let w = self.sparse_wanted;
        let level = ((w.level / SPARSITY_STEP).round() + n as f32).clamp(0.0, 9.0) / 10.0;
        if level == w.level {
            self.flash = Some(format!(
                "sparsity is already {} (from 0 to {})",
                w.level,
                slash::MAX_SPARSITY
            ));
            return vec![];
        }
        let fx = self.request_sparsity(SparsityConfig { level, ..w });
        if self.focus == Focus::Input && !fx.is_empty() {
            if let Some(f) = &mut self.flash {
                f.push_str(" · to begin a message with [ or ], type a space first");
            }
        }
        fx
    }

    /// A line for the chat that must not land inside an answer being streamed: it goes before
    /// the answer's message, as the `Dropped` notice does.
    fn insert_before_answer(&mut self, m: Message) {
        match self.messages.last() {
            Some(last) if self.generating && last.role == Role::Assistant => {
                let at = self.messages.len() - 1;
                self.messages.insert(at, m)
            }
            _ => self.messages.push(m),
        }
    }

    /// What the panels draw: the live metrics, or the snapshot taken when they were paused.
    pub fn shown_metrics(&self) -> &Metrics {
        self.frozen.as_ref().unwrap_or(&self.metrics)
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.mode, Mode::Replay { .. })
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let empty = self.input.text().is_empty();
        let Some(action) = keys::map(key, self.focus, self.help, empty) else {
            return vec![];
        };
        if action != Action::Interrupt {
            self.quit_armed = false;
        }
        self.flash = None;
        self.on_action(action)
    }

    pub fn on_action(&mut self, action: Action) -> Vec<Effect> {
        let mut fx = vec![];
        match action {
            Action::Interrupt => {
                if self.generating {
                    fx.push(Effect::Stop);
                    self.quit_armed = true;
                } else if self.quit_armed {
                    fx.push(Effect::Quit);
                } else {
                    self.quit_armed = true;
                    self.flash = Some("press Ctrl+C again to quit".into());
                }
            }
            Action::Quit => fx.push(Effect::Quit),
            Action::Suspend => fx.push(Effect::Suspend),
            Action::CloseOverlay => {
                if self.help {
                    self.help = false;
                } else {
                    self.focus = Focus::Input;
                }
            }
            Action::Help => {
                self.help = !self.help;
                self.help_scroll = 0;
            }
            Action::HelpScroll(n) => {
                self.help_scroll = (self.help_scroll as i32 + n).clamp(0, 60) as u16
            }
            Action::NextFocus => {
                self.focus = match self.focus {
                    Focus::Input => Focus::Chat,
                    Focus::Chat => Focus::Panels,
                    Focus::Panels => Focus::Input,
                }
            }
            Action::PrevFocus => {
                self.focus = match self.focus {
                    Focus::Input => Focus::Panels,
                    Focus::Chat => Focus::Input,
                    Focus::Panels => Focus::Chat,
                }
            }
            Action::Pause => {
                self.frozen = match self.frozen.take() {
                    Some(_) => None,
                    None => Some(self.metrics.clone()),
                }
            }
            Action::Theme => {
                self.theme = self.theme.next_builtin();
                self.flash = Some(format!("theme: {}", self.theme.name));
            }
            Action::Budget(n) => fx.extend(self.step_budget(n)),
            Action::SparsityStep(n) => fx.extend(self.step_sparsity(n)),
            Action::ScrollLines(n) => self.scroll_by(n),
            Action::ScrollPages(n) => {
                let page = self.chat_view.get().0.saturating_sub(1).max(1) as i32;
                self.scroll_by(n * page)
            }
            Action::ScrollTop => self.scroll = usize::MAX / 2,
            Action::ScrollBottom => self.scroll = 0,
            Action::Submit => fx.extend(self.submit()),
            Action::Newline => self.input.insert('\n'),
            Action::Type(c) => {
                self.focus = Focus::Input;
                self.input.insert(c)
            }
            Action::Backspace => self.input.backspace(),
            Action::Delete => self.input.delete(),
            Action::Left => self.input.left(),
            Action::Right => self.input.right(),
            Action::Up => {
                if !self.input.vertical(-1) {
                    self.scroll_by(1)
                }
            }
            Action::Down => {
                if !self.input.vertical(1) {
                    self.scroll_by(-1)
                }
            }
            Action::LineStart => self.input.line_start(),
            Action::LineEnd => self.input.line_end(),
            Action::ClearInput => {
                self.input.take();
            }
        }
        fx
    }

    pub fn on_mouse(&mut self, m: MouseEvent) {
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll_by(3),
            MouseEventKind::ScrollDown => self.scroll_by(-3),
            _ => {}
        }
    }

    pub fn on_paste(&mut self, text: &str) {
        self.focus = Focus::Input;
        self.input.insert_str(text);
    }

    fn scroll_by(&mut self, n: i32) {
        let (h, total) = self.chat_view.get();
        let max = total.saturating_sub(h);
        let s = self.scroll.min(max) as i64 + n as i64;
        self.scroll = s.clamp(0, max as i64) as usize;
    }

    fn notice(&mut self, text: impl Into<String>) {
        self.messages.push(Message {
            role: Role::Notice,
            text: text.into(),
        });
    }

    fn submit(&mut self) -> Vec<Effect> {
        let text = self.input.text().trim_end().to_string();
        if text.trim().is_empty() {
            return vec![];
        }
        if let Some(cmd) = slash::parse(&text) {
            // A mistyped command stays in the input to be fixed.
            if !matches!(cmd, Slash::Invalid(_)) {
                self.input.take();
            }
            return self.slash(cmd);
        }
        if self.is_replay() {
            self.flash = Some("replay: there is no model to answer".into());
            return vec![];
        }
        if self.generating {
            self.flash = Some("wait for the answer, or press Ctrl+C to stop it".into());
            return vec![];
        }
        self.input.take();
        self.apply_chat(ChatEvent::User { text: text.clone() });
        if let Some((p, _)) = &self.preparing {
            self.flash = Some(format!("the answer starts when {}", p.until()));
        }
        vec![Effect::Send(text)]
    }

    fn slash(&mut self, cmd: Slash) -> Vec<Effect> {
        let busy = self.generating && matches!(cmd, Slash::Clear | Slash::System(_));
        if busy {
            self.flash = Some("wait for the answer, or press Ctrl+C to stop it".into());
            return vec![];
        }
        match cmd {
            Slash::Clear => {
                self.apply_chat(ChatEvent::Cleared);
                vec![Effect::Clear]
            }
            Slash::System(s) => {
                self.apply_chat(ChatEvent::System { text: s.clone() });
                vec![Effect::System(s)]
            }
            Slash::Save(path) => {
                let md = transcript::to_markdown(&self.model, &self.messages);
                match transcript::save(std::path::Path::new(&path), &md, &self.inputs) {
                    Ok(()) => self.notice(format!("transcript saved to {path}")),
                    Err(e) => self.messages.push(Message {
                        role: Role::Error,
                        text: e,
                    }),
                }
                vec![]
            }
            Slash::Help => {
                self.help = true;
                self.help_scroll = 0;
                vec![]
            }
            Slash::Quit => vec![Effect::Quit],
            Slash::Budget(BudgetArg::Show) => {
                self.insert_before_answer(Message {
                    role: Role::Notice,
                    text: self.budget_notice(),
                });
                self.scroll = 0;
                vec![]
            }
            Slash::Budget(BudgetArg::Set(b)) => self.request_budget(Some(b)),
            Slash::Budget(BudgetArg::Off) => self.request_budget(None),
            Slash::Sparsity(Some(level)) => self.request_sparsity(SparsityConfig {
                level,
                ..self.sparse_wanted
            }),
            Slash::Predictor(predictor) => self.request_sparsity(SparsityConfig {
                predictor,
                ..self.sparse_wanted
            }),
            Slash::Sparsity(None) => {
                let now = match self.metrics.sparse_config {
                    Some(c) => sparsity_words(c),
                    None => "sparsity settings unknown".into(),
                };
                self.notice(format!(
                    "{now}. /sparsity X sets it (0 = dense and exact, up to {}), [ and ] step it by {SPARSITY_STEP}, /predictor on|off",
                    slash::MAX_SPARSITY
                ));
                vec![]
            }
            Slash::Invalid(m) => {
                self.insert_before_answer(Message {
                    role: Role::Error,
                    text: m,
                });
                self.scroll = 0;
                vec![]
            }
        }
    }

    /// Applies one item from the engine, the recorder's replay or the host sampler.
    pub fn apply(&mut self, feed: Feed) {
        match feed {
            Feed::Chat(c) => self.apply_chat(c),
            Feed::Telemetry(ev) => {
                if let sparsetop_engine::telemetry::Event::Token(t) = &ev {
                    self.ctx_used = t.pos as usize;
                }
                if let sparsetop_engine::telemetry::Event::Session(s) = &ev {
                    self.n_ctx = s.n_ctx as usize;
                }
                self.metrics.apply(&ev)
            }
            Feed::Host(h) => self.metrics.apply_host(h),
            Feed::ReplayEnd => {
                if let Mode::Replay { finished, .. } = &mut self.mode {
                    *finished = true;
                }
                self.generating = false;
            }
        }
    }

    /// The engine is done preparing: the status line goes back to normal, and a flash that said
    /// what waited for it no longer holds.
    fn end_preparing(&mut self) {
        if self.preparing.take().is_some() {
            self.flash = None;
        }
    }

    /// The engine's budget state: at startup, in answer to a request, or rebuilt after a sparsity
    /// change.
    fn apply_budget(&mut self, state: BudgetState, why: BudgetWhy, error: Option<String>) {
        if why == BudgetWhy::Request {
            self.budget_pending = self.budget_pending.saturating_sub(1);
            self.end_preparing();
        }
        if self.budget_pending == 0 {
            self.budget_wanted = state.budget;
        }
        self.metrics.set_budget(state.budget);
        let line = state.describe();
        let msg = match (why, error) {
            (_, Some(e)) => Some(Message {
                role: Role::Error,
                text: format!(
                    "cannot change the memory budget: {e}; still {}",
                    budget_short(&state)
                ),
            }),
            (BudgetWhy::Start, None) if state.budget.is_some() => Some(Message {
                role: Role::Notice,
                text: line,
            }),
            (BudgetWhy::Start, None) => None,
            (BudgetWhy::Request, None) if self.budget_pending == 0 => Some(Message {
                role: Role::Notice,
                text: format!("now {line}"),
            }),
            (BudgetWhy::Request, None) => None,
            (BudgetWhy::Sparsity, None) => Some(Message {
                role: Role::Notice,
                text: format!("budget set again for the new sparsity: {line}"),
            }),
        };
        self.budget = Some(state);
        if let Some(m) = msg {
            self.insert_before_answer(m);
        }
    }

    pub fn apply_chat(&mut self, c: ChatEvent) {
        match c {
            ChatEvent::User { text } => {
                self.messages.push(Message {
                    role: Role::User,
                    text,
                });
                self.messages.push(Message {
                    role: Role::Assistant,
                    text: String::new(),
                });
                self.generating = true;
                self.scroll = 0;
            }
            ChatEvent::System { text } => {
                self.ctx_used = 0;
                self.notice(format!(
                    "system message set (conversation restarted): {text}"
                ));
            }
            ChatEvent::Cleared => {
                self.messages.clear();
                self.ctx_used = 0;
                self.scroll = 0;
                self.notice("conversation cleared");
            }
            ChatEvent::Dropped { messages } => {
                let at = match self.messages.last() {
                    Some(m) if m.role == Role::Assistant => self.messages.len() - 1,
                    _ => self.messages.len(),
                };
                self.messages.insert(
                    at,
                    Message {
                        role: Role::Notice,
                        text: format!(
                            "context full: the {messages} oldest messages were dropped to make room"
                        ),
                    },
                );
            }
            ChatEvent::Token { text } => match self.messages.last_mut() {
                Some(m) if m.role == Role::Assistant => m.text.push_str(&text),
                _ => self.messages.push(Message {
                    role: Role::Assistant,
                    text,
                }),
            },
            ChatEvent::Done {
                prompt_tok_s,
                generated,
                gen_tok_s,
                ctx_used,
                stop,
                ..
            } => {
                self.generating = false;
                self.ctx_used = ctx_used;
                self.last = Some(LastAnswer {
                    generated,
                    gen_tok_s,
                    prompt_tok_s,
                });
                match stop.as_str() {
                    "stopped" => self.notice("stopped: Ctrl+C again quits"),
                    "context full" => {
                        self.notice("the context is full: /clear starts over, or raise -c")
                    }
                    _ => {}
                }
            }
            ChatEvent::Sparsity {
                level,
                predictor,
                error,
            } => {
                self.sparse_pending = self.sparse_pending.saturating_sub(1);
                self.end_preparing();
                let c = SparsityConfig { level, predictor };
                self.set_sparsity_in_force(c);
                match error {
                    Some(e) => self.insert_before_answer(Message {
                        role: Role::Error,
                        text: format!("cannot change sparsity: {e}; still {}", sparsity_words(c)),
                    }),
                    // After a burst of `[`/`]`, one notice for where it ended.
                    None if self.sparse_pending == 0 => self.insert_before_answer(Message {
                        role: Role::Notice,
                        text: format!("now {}", sparsity_words(c)),
                    }),
                    None => {}
                }
            }
            ChatEvent::CalibrationNote { text } => {
                if self.preparing.is_none() {
                    self.preparing = Some((Prep::Calibration, "calibrating".into()));
                }
                self.insert_before_answer(Message {
                    role: Role::Notice,
                    text,
                });
            }
            ChatEvent::CalibrationProgress { stage, done, total } => {
                let pct = (done * 100).checked_div(total).unwrap_or(100);
                self.preparing = Some((Prep::Calibration, format!("calibrating: {stage} {pct}%")));
            }
            ChatEvent::BundleNote { text } => {
                self.preparing = Some((Prep::Bundle, "writing the neuron bundle".into()));
                self.insert_before_answer(Message {
                    role: Role::Notice,
                    text,
                });
            }
            ChatEvent::BundleProgress { done, total } => {
                let pct = (done * 100).checked_div(total).unwrap_or(100);
                self.preparing = Some((
                    Prep::Bundle,
                    format!("writing the neuron bundle: {pct}% ({done}/{total} layers)"),
                ));
            }
            ChatEvent::Budget { state, why, error } => self.apply_budget(state, why, error),
            ChatEvent::Error { message } => {
                self.generating = false;
                if let Some(m) = self.messages.last() {
                    if m.role == Role::Assistant && m.text.is_empty() {
                        self.messages.pop();
                    }
                }
                self.messages.push(Message {
                    role: Role::Error,
                    text: message,
                });
            }
        }
    }
}
