//! FFN sparsity: how much of each layer's feed-forward network the last decoded token used, and
//! where in the calibration's hot-first neuron order that activity sits.
//!
//! With room, a heat strip: layers are columns (left to right), and rows are bands of the
//! hot-first order (hottest at the top), each cell shaded by the share of the band's neurons that
//! were active ([`Metrics::heat`], a moving average so it does not flicker). Shades (` ░▒▓█`) carry
//! the level without colour; colour adds the theme's level scale. A sparse model that behaves as
//! calibrated is dark at the top and light at the bottom: that hot set is what a neuron cache
//! keeps. Under the strip, one cell per layer for its whole active share, then a legend.
//!
//! Short of room, the strip merges bands (8 rows, then 4, then 2) and finally goes, leaving the
//! per-layer active line and legend. The title tells the settings in force.

use super::{explain, text_height, vbar, Ctx};
use crate::tui::metrics::Metrics;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};
use sparsetop_engine::sparse::SparsityConfig;
use sparsetop_engine::telemetry::{SparsitySample, HEAT_BANDS};

/// Sparse decode has not run (unknown settings: e.g. a replay without samples yet).
pub const EMPTY: &str = "dense decode: sparsity off (/sparsity 0.5 or ] skips inactive neurons)";
/// The settings say dense.
pub const DENSE: &str =
    "dense decode: every neuron computed, exact. /sparsity 0.5 or ] skips inactive ones";
/// Sparse decode is on but no token was decoded with these settings yet.
pub const WAITING: &str = "sparse decode on: waiting for the next decoded token";

/// Width of the row labels (`hot`, `cold`, `act`) in front of the strip.
const LABEL: usize = 5;
/// Rows of the strip, most first: every band, then pairs, then halves.
const ROWS: [usize; 3] = [HEAT_BANDS, HEAT_BANDS / 2, HEAT_BANDS / 4];
/// Fewest layer columns worth drawing a strip in.
const MIN_COLS: usize = 8;

/// Settings in words, for the title, the one-line gauge and the chat's notices.
pub fn describe(c: SparsityConfig) -> String {
    match (c.level == 0.0, c.predictor) {
        // Dense decode does not use the predictor: say so only when it is on for later.
        (true, false) => "sparsity off (dense)".into(),
        (true, true) => "sparsity off (dense) · predictor on".into(),
        (false, p) => format!(
            "sparsity {} · predictor {}",
            c.level,
            if p { "on" } else { "off" }
        ),
    }
}

/// The panel's title: the settings in force, when known.
pub fn title(m: &Metrics) -> String {
    match m.sparse_config {
        Some(c) => format!("FFN · {}", describe(c)),
        None => "FFN active neurons per layer · %".into(),
    }
}

/// Why there is nothing to draw, if so.
fn empty_text(m: &Metrics) -> Option<&'static str> {
    if m.sparsity.is_some() {
        return None;
    }
    Some(match m.sparse_config {
        Some(c) if c.level == 0.0 => DENSE,
        Some(_) => WAITING,
        None => EMPTY,
    })
}

/// The compact form's height: the per-layer line (wrapped) and the legend.
pub fn height(m: &Metrics, inner_w: u16) -> u16 {
    match (&m.sparsity, empty_text(m)) {
        (Some(s), _) => (s.active.len() as u16).div_ceil(inner_w.max(1)).max(1) + 1,
        (None, Some(t)) => text_height(t, inner_w),
        (None, None) => 1,
    }
}

/// The tallest form within `room` rows: the strip with as many band rows as fit (with the
/// per-layer line, legend and shade key), else the compact form. Heights in between would only
/// leave blank rows, so the layout gives those to the tokens/s chart.
pub fn fit_height(m: &Metrics, inner_w: u16, room: u16) -> u16 {
    let compact = height(m, inner_w);
    if strip_geometry(m, inner_w as usize).is_none() {
        return compact;
    }
    ROWS.into_iter()
        .map(|r| (r + 3) as u16)
        .find(|&h| h <= room)
        .unwrap_or(compact)
        .max(compact)
}

/// How the strip lays layers out across `width` cells: `(layers per column, columns, cell
/// width)`; `None` when there is no heat to draw or too little width.
fn strip_geometry(m: &Metrics, width: usize) -> Option<(usize, usize, usize)> {
    let s = m.sparsity.as_ref()?;
    let n = s.active.len();
    if n == 0 || m.heat.len() != n * HEAT_BANDS {
        return None;
    }
    let avail = width.checked_sub(LABEL)?;
    if avail < MIN_COLS.min(n) {
        return None;
    }
    let group = n.div_ceil(avail);
    let cols = n.div_ceil(group);
    let cell = if group == 1 {
        (avail / n).clamp(1, 3)
    } else {
        1
    };
    Some((group, cols, cell))
}

fn share(s: &SparsitySample, a: u32) -> f64 {
    a as f64 / s.n_ff.max(1) as f64
}

fn mean_active(s: &SparsitySample) -> f64 {
    s.active.iter().map(|&a| share(s, a)).sum::<f64>() / s.active.len().max(1) as f64
}

/// The shade of a heat cell: blank for an unused band, then quarter steps to full.
fn shade(v: f64) -> char {
    match v {
        v if v < 0.005 => ' ',
        v if v < 0.25 => '░',
        v if v < 0.5 => '▒',
        v if v < 0.75 => '▓',
        _ => '█',
    }
}

/// "30 layers, mean 41.7% active, recall 93%".
fn legend(s: &SparsitySample, group: usize) -> String {
    let mut l = format!("{} layers", s.active.len());
    if group > 1 {
        l.push_str(&format!(" ({group} a column)"));
    }
    l.push_str(&format!(", mean {:.1}% active", mean_active(s) * 100.0));
    if let Some(r) = s.recall {
        l.push_str(&format!(", recall {:.0}%", r * 100.0));
    }
    l
}

pub fn render(cx: &Ctx, area: Rect, buf: &mut Buffer) {
    let m = cx.m;
    let Some(s) = &m.sparsity else {
        return explain(cx, empty_text(m).unwrap_or(EMPTY), area, buf);
    };
    let h = area.height as usize;
    let rows = ROWS.into_iter().find(|&r| r + 2 <= h);
    match (strip_geometry(m, area.width as usize), rows) {
        (Some(geo), Some(rows)) => render_strip(cx, s, geo, rows, area, buf),
        _ => render_compact(cx, s, area, buf),
    }
}

/// The per-layer active line, wrapped, and the legend.
fn render_compact(cx: &Ctx, s: &SparsitySample, area: Rect, buf: &mut Buffer) {
    let w = area.width.max(1) as usize;
    let mut lines: Vec<Line> = s
        .active
        .chunks(w)
        .map(|chunk| Line::from(cells(cx, s, chunk)))
        .collect();
    lines.push(Line::styled(legend(s, 1), cx.th.dim()));
    Paragraph::new(lines).render(area, buf);
}

fn render_strip(
    cx: &Ctx,
    s: &SparsitySample,
    (group, cols, cell): (usize, usize, usize),
    rows: usize,
    area: Rect,
    buf: &mut Buffer,
) {
    let m = cx.m;
    let n = s.active.len();
    let per_row = HEAT_BANDS / rows;
    let layers = |c: usize| c * group..((c + 1) * group).min(n);
    let mut lines: Vec<Line> = Vec::new();
    for r in 0..rows {
        let label = match r {
            0 => "hot",
            _ if r == rows - 1 => "cold",
            _ => "",
        };
        let mut spans = vec![Span::styled(format!("{label:<LABEL$}"), cx.th.dim())];
        for c in 0..cols {
            let (mut sum, mut k) = (0.0f64, 0usize);
            for l in layers(c) {
                for b in r * per_row..(r + 1) * per_row {
                    sum += m.heat[l * HEAT_BANDS + b] as f64;
                    k += 1;
                }
            }
            let v = sum / k.max(1) as f64;
            spans.push(Span::styled(
                shade(v).to_string().repeat(cell),
                cx.th.level(v),
            ));
        }
        lines.push(Line::from(spans));
    }
    let mut act = vec![Span::styled(format!("{:<LABEL$}", "act"), cx.th.dim())];
    for c in 0..cols {
        let ls = layers(c);
        let k = ls.len().max(1) as f64;
        let f = ls.map(|l| share(s, s.active[l])).sum::<f64>() / k;
        act.push(Span::styled(
            vbar(f).to_string().repeat(cell),
            cx.th.level(f),
        ));
    }
    lines.push(Line::from(act));
    lines.push(Line::styled(legend(s, group), cx.th.dim()));
    if (area.height as usize) > rows + 2 {
        let band = s.n_ff as usize / HEAT_BANDS * per_row;
        let long = format!("hot→cold: bands of {band} · ░▒▓█ share active");
        let key = if long.chars().count() <= area.width as usize {
            long
        } else {
            "hot→cold · ░▒▓█ share active".into()
        };
        lines.push(Line::styled(key, cx.th.dim()));
    }
    Paragraph::new(lines).render(area, buf);
}

/// One vertical bar per layer: taller and warmer = more of its neurons active.
fn cells(cx: &Ctx, s: &SparsitySample, active: &[u32]) -> Vec<Span<'static>> {
    active
        .iter()
        .map(|&a| {
            let f = share(s, a);
            Span::styled(vbar(f).to_string(), cx.th.level(f))
        })
        .collect()
}

/// The one-line form: the level (and `pred` when the predictor is on), then a bar per layer.
pub fn line(cx: &Ctx, width: usize) -> Vec<Span<'static>> {
    let m = cx.m;
    let Some(s) = &m.sparsity else {
        let text = match m.sparse_config {
            Some(c) if c.level > 0.0 => format!("{} waiting for a token", c.level),
            Some(c) if c.predictor => "dense (sparsity off) · predictor on".into(),
            _ => "dense: sparsity off".into(),
        };
        return vec![Span::styled(text, cx.th.dim())];
    };
    let mut spans = vec![];
    let mut used = 0;
    if let Some(c) = m.sparse_config.filter(|c| c.level > 0.0) {
        let head = if c.predictor {
            format!("{} pred ", c.level)
        } else {
            format!("{} ", c.level)
        };
        used = head.chars().count();
        spans.push(Span::styled(head, cx.th.text()));
    }
    let n = width.saturating_sub(used).min(s.active.len());
    spans.extend(cells(cx, s, &s.active[..n]));
    spans
}
