//! The flash I/O pipeline: how many neuron reads wait in the queue, and how fast they arrive.
//! Only flash offload reads anything; with the whole model in memory there is no I/O to show.

use super::{explain, hbar, spark, text_height, Ctx};
use crate::tui::metrics::Metrics;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline, Widget};

pub const EMPTY: &str =
    "no reads from flash: the whole model is in memory (offload is not implemented yet)";

pub fn height(m: &Metrics, inner_w: u16) -> u16 {
    if m.has_io() {
        4
    } else {
        text_height(EMPTY, inner_w)
    }
}

/// The depth a full gauge stands for: at least 16, more if the queue went deeper.
fn scale(m: &Metrics) -> f64 {
    m.io_depth.max().max(16.0)
}

pub fn render(cx: &Ctx, area: Rect, buf: &mut Buffer) {
    let m = cx.m;
    if !m.has_io() {
        return explain(cx, EMPTY, area, buf);
    }
    let depth = m.io_depth.last().unwrap_or(0.0);
    let frac = depth / scale(m);
    let label = format!("depth {depth:>3.0} ");
    let (fill, empty) = hbar(frac, (area.width as usize).saturating_sub(label.len()));
    let mbs = m.io_mbs.last().unwrap_or(0.0);
    let rows = vec![
        Line::from(vec![
            Span::styled(label, cx.th.dim()),
            Span::styled(fill, cx.th.level(frac)),
            Span::styled(empty, cx.th.dim()),
        ]),
        Line::from(vec![
            Span::styled(format!("{mbs:.1} MB/s read",), cx.th.text()),
            Span::styled(
                format!(
                    "  in flight {}  latency {:.0} µs",
                    m.io_in_flight, m.io_latency_us
                ),
                cx.th.dim(),
            ),
        ]),
    ];
    let text_h = 2.min(area.height);
    Paragraph::new(rows).render(
        Rect {
            height: text_h,
            ..area
        },
        buf,
    );
    if area.height > text_h {
        let chart = Rect {
            y: area.y + text_h,
            height: area.height - text_h,
            ..area
        };
        let data: Vec<u64> = m
            .io_depth
            .tail(chart.width as usize)
            .map(|v| v.round() as u64)
            .collect();
        Sparkline::default()
            .data(&data)
            .max(scale(m) as u64)
            .style(cx.th.level(frac))
            .render(chart, buf);
    }
}

pub fn line(cx: &Ctx, width: usize) -> Vec<Span<'static>> {
    let m = cx.m;
    if !m.has_io() {
        return vec![Span::styled("no reads: whole model in memory", cx.th.dim())];
    }
    let depth = m.io_depth.last().unwrap_or(0.0);
    let text = format!("q {depth:.0} {:.1} MB/s ", m.io_mbs.last().unwrap_or(0.0));
    let room = width.saturating_sub(text.chars().count());
    vec![
        Span::styled(text, cx.th.text()),
        Span::styled(
            spark(m.io_depth.tail(room), scale(m)),
            cx.th.level(depth / scale(m)),
        ),
    ]
}
