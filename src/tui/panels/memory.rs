//! Memory: what the engine holds resident against its budget. Until flash offload brings a budget,
//! the resident figure is this process's RSS (from `sysinfo`), labelled as such.

use super::{explain, hbar, mib, text_height, Ctx};
use crate::tui::metrics::Metrics;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

pub const NO_BUDGET: &str =
    "no budget: flash offload is not implemented, so the whole model stays in memory";

pub fn height(m: &Metrics, inner_w: u16) -> u16 {
    match (&m.memory, &m.host) {
        (Some(_), _) => 2,
        (None, Some(_)) => 1 + text_height(NO_BUDGET, inner_w),
        (None, None) => 1,
    }
}

pub fn render(cx: &Ctx, area: Rect, buf: &mut Buffer) {
    let m = cx.m;
    if let Some(mem) = m.memory {
        let head = match mem.budget {
            Some(b) => format!("{} of {} MiB budget", mib(mem.resident), mib(b)),
            None => format!("resident {} MiB, no budget set", mib(mem.resident)),
        };
        let frac = mem
            .budget
            .map_or(0.0, |b| mem.resident as f64 / b.max(1) as f64);
        let (fill, empty) = hbar(frac, area.width as usize);
        Paragraph::new(vec![
            Line::styled(head, cx.th.text()),
            Line::from(vec![
                Span::styled(fill, cx.th.level(frac)),
                Span::styled(empty, cx.th.dim()),
            ]),
        ])
        .render(area, buf);
    } else if let Some(h) = &m.host {
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled(format!("resident {} MiB", mib(h.rss)), cx.th.text()),
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
    match &m.host {
        Some(h) => vec![
            Span::styled(format!("{} MiB", mib(h.rss)), cx.th.text()),
            Span::styled(" RSS, no budget", cx.th.dim()),
        ],
        None => vec![Span::styled("sampling…", cx.th.dim())],
    }
}
