//! Slash commands typed in the input box.

/// A parsed slash command.
#[derive(Debug, Clone, PartialEq)]
pub enum Slash {
    Clear,
    System(String),
    Save(String),
    Help,
    Quit,
    Budget,
    Sparsity,
    /// Usage error or unknown command: the text to show.
    Invalid(String),
}

/// What `/help` and the help overlay list.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/clear", "start a new conversation"),
    ("/system TEXT", "set the system message (starts over)"),
    ("/save FILE", "write the transcript as Markdown"),
    ("/help", "keys and commands"),
    ("/budget", "not available yet (comes with flash offload)"),
    (
        "/sparsity",
        "restart with --sparsity X to change it (live changes come next)",
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
        "budget" => Slash::Budget,
        "sparsity" => Slash::Sparsity,
        other => Slash::Invalid(format!("unknown command /{other}: /help lists them")),
    })
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
        assert_eq!(parse("/budget 2G"), Some(Slash::Budget));
    }
}
