//! Neuron-cache hit rate: the share of the active FFN neurons that were already in memory when a
//! token needed them. Only sparse decode with flash offload has such a cache.

use super::{explain, mib, spark, text_height, Ctx};
use crate::tui::metrics::Metrics;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline, Widget};

pub const EMPTY: &str =
    "no neuron cache: decode is dense and the whole model is in memory (the cache comes with flash offload)";

pub fn height(m: &Metrics, inner_w: u16) -> u16 {
    if m.cache_hit.is_empty() {
        text_height(EMPTY, inner_w)
    } else {
        3
    }
}

pub fn render(cx: &Ctx, area: Rect, buf: &mut Buffer) {
    let m = cx.m;
    let (Some(now), Some(avg)) = (m.cache_hit.last(), m.cache_hit.mean()) else {
        return explain(cx, EMPTY, area, buf);
    };
    let read = m.last_cache.map_or(0, |c| c.bytes_read);
    Paragraph::new(Line::from(vec![
        Span::styled("hit ", cx.th.dim()),
        Span::styled(format!("{now:5.1}%"), cx.th.level_good_high(now / 100.0)),
        Span::styled("  avg ", cx.th.dim()),
        Span::styled(format!("{avg:5.1}%"), cx.th.text()),
        Span::styled(format!("  miss read {} MiB", mib(read)), cx.th.dim()),
    ]))
    .render(Rect { height: 1, ..area }, buf);
    if area.height > 1 {
        let chart = Rect {
            y: area.y + 1,
            height: area.height - 1,
            ..area
        };
        let data: Vec<u64> = m
            .cache_hit
            .tail(chart.width as usize)
            .map(|v| v.round() as u64)
            .collect();
        Sparkline::default()
            .data(&data)
            .max(100)
            .style(cx.th.level_good_high(now / 100.0))
            .render(chart, buf);
    }
}

pub fn line(cx: &Ctx, width: usize) -> Vec<Span<'static>> {
    let m = cx.m;
    let Some(now) = m.cache_hit.last() else {
        return vec![Span::styled("none: whole model in memory", cx.th.dim())];
    };
    let text = format!("{now:5.1}% ");
    let room = width.saturating_sub(text.len());
    vec![
        Span::styled(text, cx.th.level_good_high(now / 100.0)),
        Span::styled(spark(m.cache_hit.tail(room), 100.0), cx.th.dim()),
    ]
}
