//! Where everything goes for a given terminal size. Wide screens put the chat on the left and
//! the panels on the right; at 60 columns or fewer the panels stack under the chat as one-line
//! gauges (a phone in portrait). Panels that do not fit at full height collapse to one line, the
//! most useful ones keeping their full form longest. Room left over lets panels that can use more
//! grow to their largest form (the sparsity heat strip), and the rest goes to the tokens/s chart.

use super::panels::Kind;
use ratatui::layout::Rect;

/// At or below this width the panels go under the chat.
pub const NARROW: u16 = 60;

#[derive(Debug, Clone, PartialEq)]
pub struct PanelSlot {
    pub kind: Kind,
    pub area: Rect,
    /// Full panel with a border, or a one-line gauge.
    pub full: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppLayout {
    pub chat: Rect,
    pub input: Rect,
    pub hints: Rect,
    pub status: Rect,
    pub panels: Vec<PanelSlot>,
}

/// How tall a panel's full form is (border included) at a column width: with `None` its preferred
/// height, with `Some(room)` the most it makes good use of within `room` rows.
pub type Heights<'a> = &'a dyn Fn(Kind, u16, Option<u16>) -> u16;

/// `input_lines` is the number of lines in the input box; `full_heights` sizes the panels for the
/// panel column's width.
pub fn compute(area: Rect, input_lines: usize, full_heights: Heights) -> AppLayout {
    let status = Rect {
        y: area.bottom().saturating_sub(1),
        height: area.height.min(1),
        ..area
    };
    let hints = Rect {
        y: status.y.saturating_sub(1),
        height: if area.height >= 12 { 1 } else { 0 },
        ..area
    };
    let body = Rect {
        height: hints.y.saturating_sub(area.y),
        ..area
    };
    let input_h = (input_lines.clamp(1, 5) as u16 + 2)
        .min(body.height / 2)
        .max(1);
    if area.width > NARROW {
        let pw = (area.width as u32 * 45 / 100).clamp(30, 60) as u16;
        let left = Rect {
            width: area.width - pw,
            ..body
        };
        let right = Rect {
            x: left.right(),
            width: pw,
            ..body
        };
        let (chat, input) = split_bottom(left, input_h);
        AppLayout {
            chat,
            input,
            hints,
            status,
            panels: stack_panels(right, full_heights),
        }
    } else {
        // Under the chat: one line per panel, as many as fit while the chat keeps 5 lines.
        let n = Kind::ORDER.len() as u16;
        let room = body.height.saturating_sub(input_h + 5);
        let ph = n.min(room);
        let panels_area = Rect {
            y: body.bottom() - ph,
            height: ph,
            ..body
        };
        let above = Rect {
            height: body.height - ph,
            ..body
        };
        let (chat, input) = split_bottom(above, input_h);
        let panels = Kind::ORDER
            .iter()
            .take(ph as usize)
            .enumerate()
            .map(|(i, &kind)| PanelSlot {
                kind,
                area: Rect {
                    y: panels_area.y + i as u16,
                    height: 1,
                    ..panels_area
                },
                full: false,
            })
            .collect();
        AppLayout {
            chat,
            input,
            hints,
            status,
            panels,
        }
    }
}

fn split_bottom(r: Rect, h: u16) -> (Rect, Rect) {
    let h = h.min(r.height);
    (
        Rect {
            height: r.height - h,
            ..r
        },
        Rect {
            y: r.bottom() - h,
            height: h,
            ..r
        },
    )
}

/// Panels in a column: everything starts as one line, then panels grow to full height in order
/// of usefulness while room remains, then to their largest form in the same order; what is left
/// goes to the tokens/s chart.
fn stack_panels(col: Rect, full_heights: Heights) -> Vec<PanelSlot> {
    let n = Kind::ORDER.len() as u16;
    let mut heights: Vec<u16> = vec![1; n as usize];
    let mut spare = col.height.saturating_sub(n);
    if col.height < n {
        heights = (0..n).map(|i| u16::from(i < col.height)).collect();
        spare = 0;
    }
    for kind in Kind::EXPAND_PRIORITY {
        let i = kind.index();
        let extra = full_heights(kind, col.width, None).saturating_sub(1);
        if heights[i] == 1 && extra <= spare {
            heights[i] += extra;
            spare -= extra;
        }
    }
    for kind in Kind::EXPAND_PRIORITY {
        let i = kind.index();
        if heights[i] > 1 {
            let room = heights[i] + spare;
            let more = full_heights(kind, col.width, Some(room))
                .min(room)
                .saturating_sub(heights[i]);
            heights[i] += more;
            spare -= more;
        }
    }
    let grow = Kind::ORDER.iter().position(|k| heights[k.index()] > 1);
    if let Some(i) = grow {
        heights[Kind::ORDER[i].index()] += spare;
    }
    let mut y = col.y;
    Kind::ORDER
        .iter()
        .filter(|k| heights[k.index()] > 0)
        .map(|&kind| {
            let h = heights[kind.index()];
            let slot = PanelSlot {
                kind,
                area: Rect {
                    y,
                    height: h,
                    ..col
                },
                full: h > 1,
            };
            y += h;
            slot
        })
        .collect()
}
