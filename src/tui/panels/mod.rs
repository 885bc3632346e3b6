//! The telemetry panels. Each panel names its quantity and unit in its title, has a full form
//! (bordered, with a history chart where it has one) and a one-line form for small screens, and
//! when it has no data says why instead of showing invented numbers.

pub mod cache;
pub mod cpu;
pub mod io;
pub mod memory;
pub mod sparsity;
pub mod tokens;

use super::metrics::Metrics;
use super::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget, Wrap};

/// What a panel draws from.
pub struct Ctx<'a> {
    pub m: &'a Metrics,
    pub th: &'a Theme,
    pub focused: bool,
    pub paused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tokens,
    Cache,
    Io,
    Cpu,
    Memory,
    Sparsity,
}

impl Kind {
    /// Top-to-bottom order on screen.
    pub const ORDER: [Kind; 6] = [
        Kind::Tokens,
        Kind::Cache,
        Kind::Io,
        Kind::Cpu,
        Kind::Memory,
        Kind::Sparsity,
    ];
    /// Which panels keep their full form longest when height is short.
    pub const EXPAND_PRIORITY: [Kind; 6] = [
        Kind::Tokens,
        Kind::Cpu,
        Kind::Memory,
        Kind::Sparsity,
        Kind::Cache,
        Kind::Io,
    ];

    pub fn index(self) -> usize {
        Kind::ORDER.iter().position(|&k| k == self).unwrap_or(0)
    }

    pub fn title(self) -> &'static str {
        match self {
            Kind::Tokens => "tokens/s · prefill, decode",
            Kind::Cache => "FFN cache hit rate · %",
            Kind::Io => "I/O · MB/s read, queue",
            Kind::Cpu => "CPU per core · %",
            Kind::Memory => "memory · MiB",
            Kind::Sparsity => "FFN active neurons per layer · %",
        }
    }

    /// The title of the full form: [`Kind::title`], or for the sparsity panel the settings in
    /// force (they change live, with `/sparsity` and `[`/`]`).
    pub fn heading(self, m: &Metrics) -> String {
        match self {
            Kind::Sparsity => sparsity::title(m),
            _ => self.title().to_string(),
        }
    }

    /// Short label of the one-line form.
    fn label(self) -> &'static str {
        match self {
            Kind::Tokens => "tok/s",
            Kind::Cache => "cache",
            Kind::Io => "I/O",
            Kind::Cpu => "CPU",
            Kind::Memory => "mem",
            Kind::Sparsity => "FFN",
        }
    }

    /// Preferred height of the full form, border included, at this width.
    pub fn full_height(self, m: &Metrics, width: u16) -> u16 {
        let inner = width.saturating_sub(2).max(1);
        2 + match self {
            Kind::Tokens => tokens::height(m, inner),
            Kind::Cache => cache::height(m, inner),
            Kind::Io => io::height(m, inner),
            Kind::Cpu => cpu::height(m, inner),
            Kind::Memory => memory::height(m, inner),
            Kind::Sparsity => sparsity::height(m, inner),
        }
    }

    /// The most height, up to `room`, the full form makes good use of at this width (the
    /// sparsity heat strip in its sizes); the layout gives it when the column has rows to spare.
    pub fn fit_height(self, m: &Metrics, width: u16, room: u16) -> u16 {
        let inner = width.saturating_sub(2).max(1);
        match self {
            Kind::Sparsity => 2 + sparsity::fit_height(m, inner, room.saturating_sub(2)),
            _ => self.full_height(m, width),
        }
    }

    /// The full form: a bordered block titled with the quantity and unit.
    pub fn render_full(self, cx: &Ctx, area: Rect, buf: &mut Buffer) {
        let mut title = format!(" {} ", self.heading(cx.m));
        if cx.paused {
            title.push_str("[paused] ");
        }
        let (bs, ts) = if cx.focused {
            (cx.th.border_focus(), cx.th.title_focus())
        } else {
            (cx.th.border(), cx.th.title())
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(bs)
            .title(Span::styled(title, ts));
        let inner = block.inner(area);
        block.render(area, buf);
        match self {
            Kind::Tokens => tokens::render(cx, inner, buf),
            Kind::Cache => cache::render(cx, inner, buf),
            Kind::Io => io::render(cx, inner, buf),
            Kind::Cpu => cpu::render(cx, inner, buf),
            Kind::Memory => memory::render(cx, inner, buf),
            Kind::Sparsity => sparsity::render(cx, inner, buf),
        }
    }

    /// The one-line form: a short label, then the panel's gauge.
    pub fn render_line(self, cx: &Ctx, area: Rect, buf: &mut Buffer) {
        let label_style = if cx.focused {
            cx.th.title_focus()
        } else {
            cx.th.title()
        };
        let lw = 6u16;
        let rest = area.width.saturating_sub(lw) as usize;
        let mut spans = vec![Span::styled(format!("{:<6}", self.label()), label_style)];
        spans.extend(match self {
            Kind::Tokens => tokens::line(cx, rest),
            Kind::Cache => cache::line(cx, rest),
            Kind::Io => io::line(cx, rest),
            Kind::Cpu => cpu::line(cx, rest),
            Kind::Memory => memory::line(cx, rest),
            Kind::Sparsity => sparsity::line(cx, rest),
        });
        if cx.paused && area.width > 20 {
            spans.push(Span::styled(" [paused]", cx.th.dim()));
        }
        Paragraph::new(Line::from(spans)).render(area, buf);
    }
}

/// A horizontal bar `width` cells wide filled to `frac` (0..=1), in eighths of a cell.
pub fn hbar(frac: f64, width: usize) -> (String, String) {
    const PART: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let frac = if frac.is_finite() {
        frac.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let eighths = (frac * width as f64 * 8.0).round() as usize;
    let full = eighths / 8;
    let mut filled = "█".repeat(full);
    let mut used = full;
    if full < width && !eighths.is_multiple_of(8) {
        filled.push_str(PART[eighths % 8]);
        used += 1;
    }
    (filled, "░".repeat(width.saturating_sub(used)))
}

/// Vertical eighth-block for a level in 0..=1 (one character of a sparkline).
pub fn vbar(frac: f64) -> char {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let frac = if frac.is_finite() {
        frac.clamp(0.0, 1.0)
    } else {
        0.0
    };
    BARS[((frac * 7.0).round() as usize).min(7)]
}

/// A text sparkline of the newest `width` values, scaled to `max`.
pub fn spark(values: impl Iterator<Item = f64>, max: f64) -> String {
    values
        .map(|v| vbar(if max > 0.0 { v / max } else { 0.0 }))
        .collect()
}

/// Lines `text` takes when wrapped at `width` (a close estimate, for layout).
pub fn text_height(text: &str, width: u16) -> u16 {
    let w = width.max(1) as usize;
    let mut lines = 0usize;
    let mut cur = 0usize;
    for word in text.split(' ') {
        let n = word.chars().count();
        if cur == 0 {
            cur = n;
            lines += 1;
        } else if cur + 1 + n <= w {
            cur += 1 + n;
        } else {
            cur = n;
            lines += 1;
        }
        while cur > w {
            cur -= w;
            lines += 1;
        }
    }
    lines.max(1) as u16
}

/// How a piece of panel text is drawn (the theme maps it to a style).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tone {
    Text,
    Dim,
    /// A level in 0..=1 where high is bad ([`Theme::level`]).
    Level(f64),
    /// A level in 0..=1 where high is good ([`Theme::level_good_high`]).
    GoodHigh(f64),
}

impl Tone {
    fn style(self, th: &Theme) -> ratatui::style::Style {
        match self {
            Tone::Text => th.text(),
            Tone::Dim => th.dim(),
            Tone::Level(f) => th.level(f),
            Tone::GoodHigh(f) => th.level_good_high(f),
        }
    }
}

/// A labelled figure that is never split across lines: its pieces and their tones.
pub type Group = Vec<(String, Tone)>;

fn group_width(g: &Group) -> usize {
    g.iter().map(|(t, _)| t.chars().count()).sum()
}

/// Lays `groups` out in lines of at most `width` columns, two spaces apart, breaking only
/// between groups (a group wider than a line gets a line of its own and is cut by the border).
/// Returns the groups' indices per line, so height and drawing agree.
fn flow_rows(groups: &[Group], width: usize) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut used = 0;
    for (i, g) in groups.iter().enumerate() {
        let w = group_width(g);
        match rows.last_mut() {
            Some(row) if used + 2 + w <= width => {
                row.push(i);
                used += 2 + w;
            }
            _ => {
                rows.push(vec![i]);
                used = w;
            }
        }
    }
    rows
}

/// Lines [`flow`] takes at this width.
pub fn flow_height(groups: &[Group], width: u16) -> u16 {
    flow_rows(groups, width as usize).len() as u16
}

/// `groups` as lines at most `width` columns wide (see [`flow_rows`]).
pub fn flow(groups: &[Group], width: u16, th: &Theme) -> Vec<Line<'static>> {
    flow_rows(groups, width as usize)
        .into_iter()
        .map(|row| {
            let mut spans = Vec::new();
            for (n, i) in row.into_iter().enumerate() {
                if n > 0 {
                    spans.push(Span::raw("  "));
                }
                spans.extend(
                    groups[i]
                        .iter()
                        .map(|(t, tone)| Span::styled(t.clone(), tone.style(th))),
                );
            }
            Line::from(spans)
        })
        .collect()
}

/// A count in few characters: 950, 34.8k, 1.2M.
pub fn count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Microseconds as µs below a millisecond, else ms.
pub fn micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

/// What the cache, I/O and memory panels say when no memory budget is set.
pub const NO_BUDGET: &str =
    "whole model in memory: no budget set (start with --mem-budget 80M or use /budget)";

/// Why a panel is empty, wrapped in its area.
pub fn explain(cx: &Ctx, text: &str, area: Rect, buf: &mut Buffer) {
    Paragraph::new(text.to_string())
        .style(cx.th.dim())
        .wrap(Wrap { trim: true })
        .render(area, buf);
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_in_eighths() {
        assert_eq!(hbar(0.5, 4), ("██".into(), "░░".into()));
        assert_eq!(hbar(1.0 / 16.0, 2), ("▏".into(), "░".into()));
        assert_eq!(hbar(2.0, 3).0, "███");
        assert_eq!(vbar(0.0), '▁');
        assert_eq!(vbar(1.0), '█');
        assert_eq!(text_height("aaa bbb ccc", 7), 2);
    }

    #[test]
    fn groups_flow_into_lines_without_splitting() {
        let g = |s: &str| vec![(s.to_string(), Tone::Text)];
        let groups = [g("hit 90%"), g("avg 88%"), g("read 3.0 MiB/tok")];
        assert_eq!(flow_rows(&groups, 40), vec![vec![0, 1, 2]]);
        assert_eq!(flow_rows(&groups, 16), vec![vec![0, 1], vec![2]]);
        assert_eq!(flow_rows(&groups, 10), vec![vec![0], vec![1], vec![2]]);
        assert_eq!(count(950), "950");
        assert_eq!(count(34_829), "34.8k");
        assert_eq!(micros(850.0), "850 µs");
        assert_eq!(micros(2972.0), "3.0 ms");
    }
}
