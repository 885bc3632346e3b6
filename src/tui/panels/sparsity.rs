//! FFN sparsity: for the last decoded token, the share of each layer's feed-forward neurons that
//! were active, one cell per layer (taller and warmer = more active). Dense decode computes every
//! neuron, so there is nothing to show until sparse decode exists.

use super::{explain, text_height, vbar, Ctx};
use crate::tui::metrics::Metrics;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};
use sparsetop_engine::telemetry::SparsitySample;

pub const EMPTY: &str =
    "dense decode: sparsity off (start with --sparsity 0.5 to skip inactive neurons)";

pub fn height(m: &Metrics, inner_w: u16) -> u16 {
    match &m.sparsity {
        Some(s) => (s.active.len() as u16).div_ceil(inner_w.max(1)).max(1) + 1,
        None => text_height(EMPTY, inner_w),
    }
}

fn share(s: &SparsitySample, a: u32) -> f64 {
    a as f64 / s.n_ff.max(1) as f64
}

fn cells(cx: &Ctx, s: &SparsitySample, n: usize) -> Vec<Span<'static>> {
    s.active
        .iter()
        .take(n)
        .map(|&a| {
            let f = share(s, a);
            Span::styled(vbar(f).to_string(), cx.th.level(f))
        })
        .collect()
}

pub fn render(cx: &Ctx, area: Rect, buf: &mut Buffer) {
    let Some(s) = &cx.m.sparsity else {
        return explain(cx, EMPTY, area, buf);
    };
    let w = area.width.max(1) as usize;
    let mut lines: Vec<Line> = s
        .active
        .chunks(w)
        .map(|chunk| {
            Line::from(
                chunk
                    .iter()
                    .map(|&a| {
                        let f = share(s, a);
                        Span::styled(vbar(f).to_string(), cx.th.level(f))
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let mean = s.active.iter().map(|&a| share(s, a)).sum::<f64>() / s.active.len().max(1) as f64;
    let mut legend = format!(
        "{} layers, mean {:.1}% active",
        s.active.len(),
        mean * 100.0
    );
    if let Some(r) = s.recall {
        legend.push_str(&format!(", recall {:.0}%", r * 100.0));
    }
    lines.push(Line::styled(legend, cx.th.dim()));
    Paragraph::new(lines).render(area, buf);
}

pub fn line(cx: &Ctx, width: usize) -> Vec<Span<'static>> {
    match &cx.m.sparsity {
        Some(s) => cells(cx, s, width),
        None => vec![Span::styled("dense: sparsity off", cx.th.dim())],
    }
}
