//! The FFN weight cache under a memory budget: the share of the FFN weights a decoded token needed
//! that were already in memory (hits; prefetched ones count), what the misses and prefetches read
//! per token, how many prefetched items were used or wasted, and the bytes of the hot region
//! (neurons, or whole layers in dense streaming) and the cold region (neuron slots, or the layer
//! staging buffers). With the whole model in memory there is no such cache.

use super::{count, explain, flow, flow_height, mib, spark, text_height, Ctx, Group, Tone};
use crate::tui::metrics::Metrics;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::{Paragraph, Sparkline, Widget};

pub use super::NO_BUDGET as EMPTY;

/// Said while a budget is set and no token has been decoded under it yet.
pub const WAITING: &str = "budget set: the cache fills from the next decoded token";

/// Rows of hit-rate history under the figures (one: the heat strip wants the room more).
const CHART: u16 = 1;

fn groups(m: &Metrics) -> Vec<Group> {
    let (Some(now), Some(avg), Some(c)) = (m.cache_hit.last(), m.cache_hit.mean(), m.last_cache)
    else {
        return vec![];
    };
    let g = |parts: &[(&str, Tone)]| -> Group {
        parts
            .iter()
            .map(|(t, tone)| (t.to_string(), *tone))
            .collect()
    };
    vec![
        g(&[
            ("hit ", Tone::Dim),
            (&format!("{now:.1}%"), Tone::GoodHigh(now / 100.0)),
        ]),
        g(&[("avg ", Tone::Dim), (&format!("{avg:.1}%"), Tone::Text)]),
        g(&[
            ("read ", Tone::Dim),
            (&format!("{} MiB/tok", mib(c.bytes_read)), Tone::Text),
        ]),
        g(&[
            ("hot ", Tone::Dim),
            (&format!("{} MiB", mib(c.hot_bytes)), Tone::Text),
            (" cold ", Tone::Dim),
            (&format!("{} MiB", mib(c.cold_bytes)), Tone::Text),
        ]),
        g(&[
            ("prefetch ", Tone::Dim),
            (&count(c.prefetch_used), Tone::Text),
            (" used ", Tone::Dim),
            (&count(c.prefetch_wasted), Tone::Text),
            (" wasted", Tone::Dim),
        ]),
    ]
}

/// Why there is nothing to show: no budget, or none decoded under it yet.
fn why_empty(m: &Metrics) -> &'static str {
    if m.budget_set().is_some() {
        WAITING
    } else {
        EMPTY
    }
}

pub fn height(m: &Metrics, inner_w: u16) -> u16 {
    if m.cache_hit.is_empty() {
        text_height(why_empty(m), inner_w)
    } else {
        flow_height(&groups(m), inner_w) + CHART
    }
}

pub fn render(cx: &Ctx, area: Rect, buf: &mut Buffer) {
    let m = cx.m;
    let Some(now) = m.cache_hit.last() else {
        return explain(cx, why_empty(m), area, buf);
    };
    let lines = flow(&groups(m), area.width, cx.th);
    let text_h = (lines.len() as u16).min(area.height);
    Paragraph::new(lines).render(
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
        let text = if m.budget_set().is_some() {
            "budget set, no token yet"
        } else {
            "no budget: whole model in memory"
        };
        return vec![Span::styled(text, cx.th.dim())];
    };
    let read = m.last_cache.map_or(0, |c| c.bytes_read);
    let text = format!("{now:5.1}% {}M/tok ", mib(read));
    let room = width.saturating_sub(text.chars().count());
    vec![
        Span::styled(format!("{now:5.1}% "), cx.th.level_good_high(now / 100.0)),
        Span::styled(format!("{}M/tok ", mib(read)), cx.th.text()),
        Span::styled(spark(m.cache_hit.tail(room), 100.0), cx.th.dim()),
    ]
}
