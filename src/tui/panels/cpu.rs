//! Per-core CPU utilisation of the whole machine, one bar per core, sampled with `sysinfo` at the
//! tick rate. It shows the engine's threads at work (and anything else competing with them).

use super::{explain, hbar, vbar, Ctx};
use crate::tui::metrics::Metrics;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

pub const EMPTY: &str = "sampling…";

fn cores(m: &Metrics) -> &[f32] {
    m.host.as_ref().map_or(&[], |h| &h.cpu)
}

/// One row per core, up to 16 rows (more cores go in columns).
pub fn height(m: &Metrics, _inner_w: u16) -> u16 {
    (cores(m).len() as u16).clamp(1, 16)
}

pub fn render(cx: &Ctx, area: Rect, buf: &mut Buffer) {
    let cpu = cores(cx.m);
    if cpu.is_empty() || area.height == 0 {
        return explain(cx, EMPTY, area, buf);
    }
    let rows = area.height as usize;
    let cols = cpu.len().div_ceil(rows);
    let col_w = (area.width as usize / cols).max(8);
    let num_w = (cpu.len() - 1).to_string().len();
    for (i, &u) in cpu.iter().enumerate() {
        let (c, r) = (i / rows, i % rows);
        let x = area.x + (c * col_w) as u16;
        if x >= area.right() {
            break;
        }
        let w = col_w.min((area.right() - x) as usize);
        let frac = u as f64 / 100.0;
        let label = format!("{i:>num_w$} ");
        let pct = format!(" {u:>3.0}%");
        let bar_w = w.saturating_sub(label.len() + pct.len() + usize::from(c + 1 < cols));
        let (fill, empty) = hbar(frac, bar_w);
        Paragraph::new(Line::from(vec![
            Span::styled(label, cx.th.dim()),
            Span::styled(fill, cx.th.level(frac)),
            Span::styled(empty, cx.th.dim()),
            Span::styled(pct, cx.th.text()),
        ]))
        .render(
            Rect {
                x,
                y: area.y + r as u16,
                width: w as u16,
                height: 1,
            },
            buf,
        );
    }
}

pub fn line(cx: &Ctx, width: usize) -> Vec<Span<'static>> {
    let cpu = cores(cx.m);
    if cpu.is_empty() {
        return vec![Span::styled(EMPTY, cx.th.dim())];
    }
    let avg = cpu.iter().sum::<f32>() / cpu.len() as f32;
    let mut spans: Vec<Span> = cpu
        .iter()
        .take(width.saturating_sub(10))
        .map(|&u| {
            let f = u as f64 / 100.0;
            Span::styled(vbar(f).to_string(), cx.th.level(f))
        })
        .collect();
    spans.push(Span::styled(format!(" avg {avg:.0}%"), cx.th.text()));
    spans
}
