//! Memory: what the engine holds resident against its budget (from the engine's samples, per
//! decoded token), with this process's RSS (from `sysinfo`) under it for the operating system's
//! view. Without a budget the RSS alone, labelled as such.

use super::{explain, hbar, mib, text_height, Ctx, NO_BUDGET};
use crate::tui::metrics::Metrics;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

/// Said while a budget is set and no token has been decoded under it yet.
fn waiting(b: u64) -> String {
    format!(
        "{} MiB budget set: resident shows from the next decoded token",
        mib(b)
    )
}

/// The process RSS line under the budget's figures.
fn rss_line(cx: &Ctx, rss: u64) -> Line<'static> {
    Line::from(vec![
        Span::styled("process RSS ", cx.th.dim()),
        Span::styled(format!("{} MiB", mib(rss)), cx.th.text()),
    ])
}

/// The first words without a budget: the process RSS stands for what is resident.
fn rss_head(rss: u64) -> String {
    format!("resident {} MiB", mib(rss))
}

pub fn height(m: &Metrics, inner_w: u16) -> u16 {
    let rss = u16::from(m.host.is_some());
    match (&m.memory, m.budget_set(), &m.host) {
        (Some(_), _, _) => 2 + rss,
        (None, Some(b), _) => text_height(&waiting(b), inner_w) + rss,
        (None, None, Some(h)) => {
            text_height(&format!("{} (process RSS)", rss_head(h.rss)), inner_w)
                + text_height(NO_BUDGET, inner_w)
        }
        (None, None, None) => 1,
    }
}

pub fn render(cx: &Ctx, area: Rect, buf: &mut Buffer) {
    let m = cx.m;
    if let Some(mem) = m.memory {
        let head = match mem.budget {
            Some(b) => {
                let short = format!("{} of {} MiB budget", mib(mem.resident), mib(b));
                let long = format!("resident {short}");
                if long.chars().count() <= area.width as usize {
                    long
                } else {
                    short
                }
            }
            None => format!("resident {} MiB, no budget set", mib(mem.resident)),
        };
        let frac = mem
            .budget
            .map_or(0.0, |b| mem.resident as f64 / b.max(1) as f64);
        let (fill, empty) = hbar(frac, area.width as usize);
        let mut lines = vec![
            Line::styled(head, cx.th.text()),
            Line::from(vec![
                Span::styled(fill, cx.th.level(frac)),
                Span::styled(empty, cx.th.dim()),
            ]),
        ];
        if let Some(h) = &m.host {
            lines.push(rss_line(cx, h.rss));
        }
        Paragraph::new(lines).render(area, buf);
    } else if let Some(b) = m.budget_set() {
        let mut lines = vec![Line::styled(waiting(b), cx.th.dim())];
        if let Some(h) = &m.host {
            lines.push(rss_line(cx, h.rss));
        }
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .render(area, buf);
    } else if let Some(h) = &m.host {
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled(rss_head(h.rss), cx.th.text()),
                Span::styled(" (process RSS)", cx.th.dim()),
            ]),
            Line::styled(NO_BUDGET, cx.th.dim()),
        ])
        .wrap(Wrap { trim: true })
        .render(area, buf);
    } else {
        explain(cx, "sampling…", area, buf);
    }
}

pub fn line(cx: &Ctx, width: usize) -> Vec<Span<'static>> {
    let m = cx.m;
    if let Some(mem) = m.memory {
        if let Some(b) = mem.budget {
            let frac = mem.resident as f64 / b.max(1) as f64;
            let text = format!(" {}/{} MiB", mib(mem.resident), mib(b));
            let (fill, empty) = hbar(frac, width.saturating_sub(text.len()).min(20));
            return vec![
                Span::styled(fill, cx.th.level(frac)),
                Span::styled(empty, cx.th.dim()),
                Span::styled(text, cx.th.text()),
            ];
        }
        return vec![Span::styled(
            format!("{} MiB, no budget", mib(mem.resident)),
            cx.th.text(),
        )];
    }
    if let Some(b) = m.budget_set() {
        return vec![Span::styled(
            format!("{} MiB budget, no token yet", mib(b)),
            cx.th.dim(),
        )];
    }
    match &m.host {
        Some(h) => vec![
            Span::styled(format!("{} MiB", mib(h.rss)), cx.th.text()),
            Span::styled(" RSS, no budget", cx.th.dim()),
        ],
        None => vec![Span::styled("sampling…", cx.th.dim())],
    }
}
