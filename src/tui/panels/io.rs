//! The flash I/O pipeline under a memory budget: how fast each decoded token read (its reads over
//! its time, with a chart; what it read is in the cache panel), the reads waiting in the queue and
//! in flight when the token ended, and their mean latency. With the whole model in memory nothing
//! is read.

use super::{explain, flow, flow_height, mib, micros, spark, text_height, Ctx, Group, Tone};
use crate::tui::metrics::Metrics;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Span;
use ratatui::widgets::{Paragraph, Sparkline, Widget};

pub use super::NO_BUDGET as EMPTY;

/// Said while a budget is set and no token has been decoded under it yet.
pub const WAITING: &str = "budget set: reads show from the next decoded token";

/// Rows of MB/s history under the figures (one: the heat strip wants the room more).
const CHART: u16 = 1;

/// The MB/s a full chart stands for: the most seen, at least 1.
fn scale(m: &Metrics) -> f64 {
    m.io_mbs.max().max(1.0)
}

/// The queue depth a level colour is judged against.
const DEEP_QUEUE: f64 = 16.0;

fn groups(m: &Metrics) -> Vec<Group> {
    let depth = m.io_depth.last().unwrap_or(0.0);
    let mbs = m.io_mbs.last();
    // What a token reads is in the cache panel; here how fast it came.
    let mut g: Vec<Group> = vec![match mbs {
        Some(v) => vec![(format!("{v:.0} MB/s"), Tone::Text)],
        None => vec![
            ("read ".into(), Tone::Dim),
            (format!("{} MiB/tok", mib(m.io_bytes)), Tone::Text),
        ],
    }];
    g.push(vec![
        ("queue ".into(), Tone::Dim),
        (format!("{depth:.0}"), Tone::Level(depth / DEEP_QUEUE)),
    ]);
    g.push(vec![
        ("in flight ".into(), Tone::Dim),
        (m.io_in_flight.to_string(), Tone::Text),
    ]);
    g.push(vec![
        ("latency ".into(), Tone::Dim),
        (
            if m.io_latency_us > 0.0 {
                micros(m.io_latency_us as f64)
            } else {
                "-".into()
            },
            Tone::Text,
        ),
    ]);
    g
}

fn why_empty(m: &Metrics) -> &'static str {
    if m.budget_set().is_some() {
        WAITING
    } else {
        EMPTY
    }
}

pub fn height(m: &Metrics, inner_w: u16) -> u16 {
    if m.has_io() {
        flow_height(&groups(m), inner_w) + CHART
    } else {
        text_height(why_empty(m), inner_w)
    }
}

pub fn render(cx: &Ctx, area: Rect, buf: &mut Buffer) {
    let m = cx.m;
    if !m.has_io() {
        return explain(cx, why_empty(m), area, buf);
    }
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
            .io_mbs
            .tail(chart.width as usize)
            .map(|v| v.round() as u64)
            .collect();
        Sparkline::default()
            .data(&data)
            .max(scale(m).round() as u64)
            .style(cx.th.text())
            .render(chart, buf);
    }
}

pub fn line(cx: &Ctx, width: usize) -> Vec<Span<'static>> {
    let m = cx.m;
    if !m.has_io() {
        let text = if m.budget_set().is_some() {
            "budget set, no token yet"
        } else {
            "no reads: whole model in memory"
        };
        return vec![Span::styled(text, cx.th.dim())];
    }
    let depth = m.io_depth.last().unwrap_or(0.0);
    let text = format!("{:.0} MB/s q {depth:.0} ", m.io_mbs.last().unwrap_or(0.0));
    let room = width.saturating_sub(text.chars().count());
    vec![
        Span::styled(text, cx.th.text()),
        Span::styled(spark(m.io_mbs.tail(room), scale(m)), cx.th.dim()),
    ]
}
