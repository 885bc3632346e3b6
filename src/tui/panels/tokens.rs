//! Tokens per second: prefill (prompt batches) and decode (one token at a time), the latest value
//! and the average over the session, with the decode history as a chart.

use super::{explain, spark, text_height, Ctx};
use crate::tui::metrics::Metrics;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline, Widget};

pub const EMPTY: &str = "no tokens yet: send a message to see prefill and decode speed";

fn has_data(m: &Metrics) -> bool {
    !m.decode.is_empty() || !m.prefill.is_empty()
}

pub fn height(m: &Metrics, inner_w: u16) -> u16 {
    if has_data(m) {
        5
    } else {
        text_height(EMPTY, inner_w)
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("    -".to_string(), |v| format!("{v:>5.1}"))
}

pub fn render(cx: &Ctx, area: Rect, buf: &mut Buffer) {
    let m = cx.m;
    if !has_data(m) {
        return explain(cx, EMPTY, area, buf);
    }
    let rows = [
        Line::from(vec![
            Span::styled("decode  ", cx.th.decode()),
            Span::styled(fmt(m.decode.last()), cx.th.text()),
            Span::styled(" now ", cx.th.dim()),
            Span::styled(fmt(m.decode_total.tok_s()), cx.th.text()),
            Span::styled(" avg", cx.th.dim()),
        ]),
        Line::from(vec![
            Span::styled("prefill ", cx.th.prefill()),
            Span::styled(fmt(m.prefill.last()), cx.th.text()),
            Span::styled(" now ", cx.th.dim()),
            Span::styled(fmt(m.prefill_total.tok_s()), cx.th.text()),
            Span::styled(" avg", cx.th.dim()),
        ]),
    ];
    let text_h = (rows.len() as u16).min(area.height);
    Paragraph::new(rows.to_vec()).render(
        Rect {
            height: text_h,
            ..area
        },
        buf,
    );
    let chart = Rect {
        y: area.y + text_h,
        height: area.height - text_h,
        ..area
    };
    if chart.height == 0 || m.decode.is_empty() {
        return;
    }
    // Sparkline draws integers: tenths of a token/s keep small rates visible.
    let data: Vec<u64> = m
        .decode
        .tail(chart.width as usize)
        .map(|v| (v * 10.0).round() as u64)
        .collect();
    let max = (m.decode.max() * 10.0).ceil().max(1.0) as u64;
    Sparkline::default()
        .data(&data)
        .max(max)
        .style(cx.th.decode())
        .render(chart, buf);
}

pub fn line(cx: &Ctx, width: usize) -> Vec<Span<'static>> {
    let m = cx.m;
    if !has_data(m) {
        return vec![Span::styled("none yet: send a message", cx.th.dim())];
    }
    let text = format!(
        "dec {} avg {} pre {} ",
        fmt(m.decode.last()).trim(),
        fmt(m.decode_total.tok_s()).trim(),
        fmt(m.prefill.last()).trim()
    );
    let room = width.saturating_sub(text.chars().count());
    vec![
        Span::styled(text, cx.th.text()),
        Span::styled(spark(m.decode.tail(room), m.decode.max()), cx.th.decode()),
    ]
}
