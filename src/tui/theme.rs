//! Colour themes, read from TOML files in `themes/`. The files are embedded in the binary (so an
//! installed `sparsetop` has them) and, when the source tree is around, read from disk at run time
//! so a theme can be edited without rebuilding. The default uses the 16 ANSI colours so it follows
//! the terminal's palette; `NO_COLOR` selects the monochrome theme, in which focus and the status
//! line are shown with bold and reverse video.

use anyhow::{anyhow, Context};
use ratatui::style::{Color, Modifier, Style};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The built-in themes, in the order `t` cycles through them.
pub const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("dark256", include_str!("../../themes/dark256.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("mono", include_str!("../../themes/mono.toml")),
];

/// One colour as written in a theme file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThemeColor(pub Color);

impl<'de> Deserialize<'de> for ThemeColor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ThemeColor;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a colour: an ANSI name, \"reset\", an index 0-255 or \"#rrggbb\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ThemeColor, E> {
                u8::try_from(v)
                    .map(|i| ThemeColor(Color::Indexed(i)))
                    .map_err(|_| E::custom(format!("colour index {v} is not in 0-255")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ThemeColor, E> {
                self.visit_i64(v.min(i64::MAX as u64) as i64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ThemeColor, E> {
                parse_color(v).map(ThemeColor).ok_or_else(|| {
                    E::custom(format!(
                        "unknown colour \"{v}\" (use an ANSI name such as \"cyan\" or \"lightred\", \"reset\", an index 0-255 or \"#rrggbb\")"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_color(s: &str) -> Option<Color> {
    let l = s.trim().to_ascii_lowercase().replace(['_', '-', ' '], "");
    Some(match l.as_str() {
        "reset" | "default" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "darkgray" | "darkgrey" | "brightblack" => Color::DarkGray,
        "lightred" | "brightred" => Color::LightRed,
        "lightgreen" | "brightgreen" => Color::LightGreen,
        "lightyellow" | "brightyellow" => Color::LightYellow,
        "lightblue" | "brightblue" => Color::LightBlue,
        "lightmagenta" | "brightmagenta" => Color::LightMagenta,
        "lightcyan" | "brightcyan" => Color::LightCyan,
        "white" | "brightwhite" => Color::White,
        hex if hex.starts_with('#') && hex.len() == 7 => {
            let v = u32::from_str_radix(&hex[1..], 16).ok()?;
            Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8)
        }
        n => Color::Indexed(n.parse().ok()?),
    })
}

/// The colours of a theme; every key is required so a typo cannot silently fall back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Colors {
    pub background: ThemeColor,
    pub text: ThemeColor,
    pub dim: ThemeColor,
    pub border: ThemeColor,
    pub focus: ThemeColor,
    pub title: ThemeColor,
    pub user: ThemeColor,
    pub assistant: ThemeColor,
    pub notice: ThemeColor,
    pub error: ThemeColor,
    pub status_fg: ThemeColor,
    pub status_bg: ThemeColor,
    pub good: ThemeColor,
    pub warn: ThemeColor,
    pub bad: ThemeColor,
    pub decode: ThemeColor,
    pub prefill: ThemeColor,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: String,
    colors: Colors,
}

/// A loaded theme with the styles the widgets use.
#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    pub c: Colors,
    /// No colours at all (the mono theme or NO_COLOR): emphasis comes from modifiers alone.
    pub mono: bool,
}

impl Theme {
    /// Parses a theme; `origin` names the file in error messages, which give its line and key.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Theme> {
        let f: ThemeFile = toml::from_str(text).map_err(|e| theme_error(text, origin, &e))?;
        let cs = [
            &f.colors.text,
            &f.colors.dim,
            &f.colors.border,
            &f.colors.focus,
            &f.colors.status_bg,
            &f.colors.good,
            &f.colors.bad,
        ];
        let mono = cs.iter().all(|c| c.0 == Color::Reset);
        Ok(Theme {
            name: f.name,
            c: f.colors,
            mono,
        })
    }

    /// A built-in theme by name (from the source tree's `themes/` when present, else embedded).
    pub fn builtin(name: &str) -> Option<Theme> {
        let (n, embedded) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        let on_disk = themes_dir().join(format!("{n}.toml"));
        if let Ok(text) = std::fs::read_to_string(&on_disk) {
            if let Ok(t) = Theme::parse(&text, &on_disk.display().to_string()) {
                return Some(t);
            }
        }
        Some(Theme::parse(embedded, &format!("themes/{n}.toml")).expect("built-in themes parse"))
    }

    /// `--theme NAME|PATH`: a built-in name, or a TOML file.
    pub fn load(spec: &str) -> anyhow::Result<Theme> {
        if let Some(t) = Theme::builtin(spec) {
            return Ok(t);
        }
        let path = Path::new(spec);
        if path.exists() || spec.ends_with(".toml") || spec.contains('/') {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read theme file {}", path.display()))?;
            return Theme::parse(&text, &path.display().to_string());
        }
        let names: Vec<_> = BUILTIN.iter().map(|(n, _)| *n).collect();
        Err(anyhow!(
            "unknown theme \"{spec}\": use one of {} or a path to a .toml file",
            names.join(", ")
        ))
    }

    /// The theme to start with: `NO_COLOR` (non-empty, per no-color.org) forces monochrome.
    pub fn select(spec: &str, no_color: bool) -> anyhow::Result<Theme> {
        let t = Theme::load(spec)?;
        if no_color {
            return Ok(Theme::builtin("mono").expect("mono is built in"));
        }
        Ok(t)
    }

    /// The built-in theme after this one, for the `t` key.
    pub fn next_builtin(&self) -> Theme {
        let i = BUILTIN.iter().position(|(n, _)| *n == self.name);
        let next = i.map_or(0, |i| (i + 1) % BUILTIN.len());
        Theme::builtin(BUILTIN[next].0).expect("built-in theme")
    }

    fn fg(c: ThemeColor) -> Style {
        Style::default().fg(c.0)
    }

    pub fn base(&self) -> Style {
        Style::default().fg(self.c.text.0).bg(self.c.background.0)
    }
    pub fn text(&self) -> Style {
        Self::fg(self.c.text)
    }
    pub fn dim(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::DIM)
        } else {
            Self::fg(self.c.dim)
        }
    }
    pub fn border(&self) -> Style {
        Self::fg(self.c.border)
    }
    pub fn border_focus(&self) -> Style {
        Self::fg(self.c.focus).add_modifier(Modifier::BOLD)
    }
    pub fn title(&self) -> Style {
        Self::fg(self.c.title).add_modifier(Modifier::BOLD)
    }
    /// A focused panel's title: bold colour, and reverse video when there is no colour.
    pub fn title_focus(&self) -> Style {
        let s = Self::fg(self.c.focus).add_modifier(Modifier::BOLD);
        if self.mono {
            s.add_modifier(Modifier::REVERSED)
        } else {
            s
        }
    }
    pub fn user(&self) -> Style {
        Self::fg(self.c.user).add_modifier(Modifier::BOLD)
    }
    pub fn assistant(&self) -> Style {
        Self::fg(self.c.assistant)
    }
    pub fn notice(&self) -> Style {
        Self::fg(self.c.notice).add_modifier(Modifier::ITALIC)
    }
    pub fn error(&self) -> Style {
        Self::fg(self.c.error).add_modifier(Modifier::BOLD)
    }
    pub fn status(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default()
                .fg(self.c.status_fg.0)
                .bg(self.c.status_bg.0)
        }
    }
    pub fn decode(&self) -> Style {
        Self::fg(self.c.decode)
    }
    pub fn prefill(&self) -> Style {
        Self::fg(self.c.prefill)
    }
    /// Colour for a level in 0..=1 where high is good (cache hit rate).
    pub fn level_good_high(&self, frac: f64) -> Style {
        self.level(1.0 - frac)
    }
    /// Colour for a level in 0..=1 where high is bad (load, queue depth, memory).
    pub fn level(&self, frac: f64) -> Style {
        let c = if frac < 0.6 {
            self.c.good
        } else if frac < 0.85 {
            self.c.warn
        } else {
            self.c.bad
        };
        Self::fg(c)
    }
}

/// Where the source tree keeps its themes (used when running from a checkout).
fn themes_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("themes")
}

/// Turns toml's error into "FILE:LINE: key `table.key`: message".
fn theme_error(text: &str, origin: &str, e: &toml::de::Error) -> anyhow::Error {
    let msg = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return anyhow!("invalid theme {origin}: {msg}");
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    // The key on that line and the table it sits in, for a message that names both.
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"'));
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(['[', ']']).trim());
    let key = match (table, key) {
        (Some(t), Some(k)) => format!(": key `{t}.{k}`"),
        (None, Some(k)) => format!(": key `{k}`"),
        (Some(t), None) => format!(": table `{t}`"),
        (None, None) => String::new(),
    };
    anyhow!("invalid theme {origin}:{line_no}{key}: {msg}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_parses() {
        for (name, text) in BUILTIN {
            let t = Theme::parse(text, name).unwrap();
            assert_eq!(t.name, *name);
            assert_eq!(t.mono, *name == "mono");
        }
        assert_eq!(Theme::builtin("default").unwrap().c.focus.0, Color::Cyan);
        assert_eq!(
            Theme::builtin("dark256").unwrap().c.focus.0,
            Color::Indexed(81)
        );
    }

    #[test]
    fn bad_colour_names_file_line_and_key() {
        let text = BUILTIN[0].1.replace("focus = \"cyan\"", "focus = \"teal\"");
        let line = text.lines().position(|l| l.starts_with("focus")).unwrap() + 1;
        let e = Theme::parse(&text, "mine.toml").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "invalid theme mine.toml:{line}: key `colors.focus`"
            )),
            "{e}"
        );
        assert!(e.contains("unknown colour \"teal\""), "{e}");
    }

    #[test]
    fn unknown_and_missing_keys_are_errors() {
        let text = BUILTIN[0].1.replace("dim = ", "dimm = ");
        let e = Theme::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(e.contains("x.toml:") && e.contains("dimm"), "{e}");
        let text = BUILTIN[0].1.replace("text = \"reset\"\n", "");
        let e = Theme::parse(&text, "y.toml").unwrap_err().to_string();
        assert!(e.contains("y.toml") && e.contains("text"), "{e}");
        let e = Theme::parse("name = \"a\"\n[colors]\ntext = 300\n", "z.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("z.toml:3: key `colors.text`") && e.contains("0-255"),
            "{e}"
        );
    }

    #[test]
    fn no_color_selects_mono_and_names_cycle() {
        assert!(Theme::select("dark256", true).unwrap().mono);
        assert_eq!(Theme::select("light", false).unwrap().name, "light");
        assert!(Theme::load("nope")
            .unwrap_err()
            .to_string()
            .contains("unknown theme"));
        let mut t = Theme::builtin("default").unwrap();
        let mut seen = vec![];
        for _ in 0..4 {
            t = t.next_builtin();
            seen.push(t.name.clone());
        }
        assert_eq!(seen, ["dark256", "light", "mono", "default"]);
    }
}
