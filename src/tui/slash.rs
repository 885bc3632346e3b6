//! Slash commands typed in the input box.

/// A parsed slash command.
#[derive(Debug, Clone, PartialEq)]
pub enum Slash {
    Clear,
    System(String),
    Save(String),
    Help,
    Quit,
    /// `/budget [SIZE|off]`: show, set or lift the memory budget.
    Budget(BudgetArg),
    /// `/sparsity X`: the share of FFN neurons to skip (0 to 0.9); `None` (no argument) shows
    /// the settings in force.
    Sparsity(Option<f32>),
    /// `/predictor on|off`: use the low-rank predictor to skip gate rows too.
    Predictor(bool),
    /// Usage error or unknown command: the text to show.
    Invalid(String),
}

/// What `/budget` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetArg {
    /// No argument: show the budget in force and the fixed region.
    Show,
    /// A size, in bytes.
    Set(u64),
    /// `off`: lift the budget (refused for a model opened with one).
    Off,
}

/// What `/help` and the help overlay list.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/clear", "start a new conversation"),
    ("/system TEXT", "set the system message (starts over)"),
    ("/save FILE", "write the transcript as Markdown"),
    ("/help", "keys and commands"),
    ("/budget SIZE|off", "memory budget (80M, 1.5G); alone: show"),
    ("/sparsity X", "FFN neurons to skip, 0 (dense) to 0.9"),
    (
        "/predictor on|off",
        "low-rank predictor skips gate rows too",
    ),
    ("/quit", "leave"),
];

/// Parses input that starts with `/`; `None` for ordinary text.
pub fn parse(input: &str) -> Option<Slash> {
    let s = input.trim();
    let rest = s.strip_prefix('/')?;
    let (cmd, arg) = match rest.split_once(char::is_whitespace) {
        Some((c, a)) => (c, a.trim()),
        None => (rest, ""),
    };
    Some(match cmd {
        "clear" | "reset" => Slash::Clear,
        "system" if arg.is_empty() => Slash::Invalid("usage: /system TEXT".into()),
        "system" => Slash::System(arg.to_string()),
        "save" if arg.is_empty() => Slash::Invalid("usage: /save FILE".into()),
        "save" => Slash::Save(arg.to_string()),
        "help" | "?" => Slash::Help,
        "quit" | "exit" | "q" => Slash::Quit,
        "budget" => budget(arg),
        "sparsity" => sparsity(arg),
        "predictor" => match arg {
            "on" => Slash::Predictor(true),
            "off" => Slash::Predictor(false),
            _ => Slash::Invalid("usage: /predictor on|off".into()),
        },
        other => Slash::Invalid(format!("unknown command /{other}: /help lists them")),
    })
}

/// `/budget [SIZE|off]`, the size read as `--mem-budget` reads it, so a typo is answered at once.
fn budget(arg: &str) -> Slash {
    match arg {
        "" => Slash::Budget(BudgetArg::Show),
        "off" | "none" => Slash::Budget(BudgetArg::Off),
        _ => match sparsetop_engine::offload::budget::parse_size(arg) {
            Ok(b) => Slash::Budget(BudgetArg::Set(b)),
            Err(e) => Slash::Invalid(format!("{e} (usage: /budget SIZE, /budget off)")),
        },
    }
}

/// The most sparsity the engine takes (its `sparse::level`): past it quality falls apart.
pub const MAX_SPARSITY: f32 = sparsetop_engine::sparse::level::MAX_LEVEL;

/// `/sparsity [X|off]`, read as `--sparsity` reads it, so a typo is answered at once, before
/// reaching the engine.
fn sparsity(arg: &str) -> Slash {
    if arg.is_empty() {
        return Slash::Sparsity(None);
    }
    if arg == "off" {
        return Slash::Sparsity(Some(0.0));
    }
    match crate::value_parsers::sparsity(arg) {
        Ok(x) => Slash::Sparsity(Some(x)),
        Err(e) => Slash::Invalid(format!(
            "{e} (usage: /sparsity X, X from 0 (dense, exact) to {MAX_SPARSITY})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("hello"), None);
        assert_eq!(parse("/clear"), Some(Slash::Clear));
        assert_eq!(
            parse("/system  Be brief. "),
            Some(Slash::System("Be brief.".into()))
        );
        assert_eq!(parse("/save a.md"), Some(Slash::Save("a.md".into())));
        assert!(matches!(parse("/save"), Some(Slash::Invalid(_))));
        assert!(matches!(parse("/frob"), Some(Slash::Invalid(m)) if m.contains("/frob")));
    }

    #[test]
    fn parses_budget() {
        use BudgetArg::*;
        assert_eq!(parse("/budget"), Some(Slash::Budget(Show)));
        assert_eq!(parse("/budget 80M"), Some(Slash::Budget(Set(80 << 20))));
        assert_eq!(parse("/budget  1.5G "), Some(Slash::Budget(Set(3 << 29))));
        assert_eq!(parse("/budget 512k"), Some(Slash::Budget(Set(512 << 10))));
        assert_eq!(parse("/budget 100MiB"), Some(Slash::Budget(Set(100 << 20))));
        assert_eq!(parse("/budget off"), Some(Slash::Budget(Off)));
        for bad in [
            "/budget lots",
            "/budget 80Q",
            "/budget -5M",
            "/budget 0",
            "/budget M",
        ] {
            assert!(
                matches!(parse(bad), Some(Slash::Invalid(m)) if m.contains("cannot read") && m.contains("usage: /budget SIZE")),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_sparsity_and_predictor() {
        assert_eq!(parse("/sparsity 0.3"), Some(Slash::Sparsity(Some(0.3))));
        assert_eq!(parse("/sparsity 0"), Some(Slash::Sparsity(Some(0.0))));
        assert_eq!(parse("/sparsity 0.9"), Some(Slash::Sparsity(Some(0.9))));
        assert_eq!(parse("/sparsity off"), Some(Slash::Sparsity(Some(0.0))));
        assert_eq!(parse("/sparsity"), Some(Slash::Sparsity(None)));
        for bad in ["/sparsity 1.5", "/sparsity -0.1", "/sparsity 0.91"] {
            assert!(
                matches!(parse(bad), Some(Slash::Invalid(m)) if m.contains("out of range")),
                "{bad}"
            );
        }
        for bad in ["/sparsity half", "/sparsity NaN", "/sparsity inf"] {
            assert!(
                matches!(parse(bad), Some(Slash::Invalid(m)) if m.contains("not a number") && m.contains("usage: /sparsity X")),
                "{bad}"
            );
        }
        assert_eq!(parse("/predictor on"), Some(Slash::Predictor(true)));
        assert_eq!(parse("/predictor off"), Some(Slash::Predictor(false)));
        assert!(matches!(parse("/predictor"), Some(Slash::Invalid(m)) if m.contains("on|off")));
        assert!(matches!(parse("/predictor yes"), Some(Slash::Invalid(_))));
    }
}
