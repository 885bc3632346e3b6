//! Draws the whole app from its state: chat, input, hint bar, status line, panels and the help
//! overlay. Pure: it reads the state and writes a frame, so tests render it into a `TestBackend`.

use super::app::{App, Focus, Mode};
use super::chat_view;
use super::keys::HELP;
use super::layout;
use super::panels::{text_height, Ctx, Kind};
use super::safe_text::{self, display};
use super::slash::COMMANDS;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};
use ratatui::Frame;

pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let buf = f.buffer_mut();
    Block::default().style(app.theme.base()).render(area, buf);
    let m = app.shown_metrics();
    let input_lines = app.input.text().split('\n').count();
    let lay = layout::compute(area, input_lines, &|k: Kind, w, room| match room {
        None => k.full_height(m, w),
        Some(room) => k.fit_height(m, w, room),
    });
    chat_view::render(app, lay.chat, buf);
    draw_input(f, app, lay.input);
    let buf = f.buffer_mut();
    for slot in &lay.panels {
        let cx = Ctx {
            m,
            th: &app.theme,
            focused: app.focus == Focus::Panels,
            paused: app.frozen.is_some(),
        };
        if slot.full {
            slot.kind.render_full(&cx, slot.area, buf);
        } else {
            slot.kind.render_line(&cx, slot.area, buf);
        }
    }
    draw_hints(app, lay.hints, buf);
    draw_status(app, lay.status, buf);
    if app.help {
        draw_help(app, area, buf);
    }
    // Whatever control character is left (a label no one thought of) is shown, not obeyed.
    safe_text::scrub_buffer(f.buffer_mut());
}

fn draw_input(f: &mut Frame, app: &App, area: Rect) {
    let focused = app.focus == Focus::Input;
    let (bs, ts) = if focused {
        (app.theme.border_focus(), app.theme.title_focus())
    } else {
        (app.theme.border(), app.theme.title())
    };
    let title = if app.generating {
        " message (answering: Ctrl+C stops) "
    } else {
        " message "
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(bs)
        .title(Span::styled(title, ts));
    let inner = block.inner(area);
    let (lines, row, col) = app.input.lines_and_cursor();
    // Keep the cursor's line in view and scroll sideways on long lines.
    let top = (row + 1).saturating_sub(inner.height.max(1) as usize);
    let left = (col + 1).saturating_sub(inner.width.max(1) as usize);
    let text: Vec<Line> = lines
        .iter()
        .skip(top)
        .map(|l| Line::styled(l.to_string(), app.theme.text()))
        .collect();
    Paragraph::new(text)
        .block(block)
        .scroll((0, left as u16))
        .render(area, f.buffer_mut());
    if focused && !app.help && inner.width > 0 && inner.height > 0 {
        f.set_cursor_position((inner.x + (col - left) as u16, inner.y + (row - top) as u16));
    }
}

fn draw_hints(app: &App, area: Rect, buf: &mut ratatui::buffer::Buffer) {
    if area.height == 0 {
        return;
    }
    let text = if let Some(flash) = &app.flash {
        Line::styled(format!(" {}", display(flash)), app.theme.notice())
    } else {
        let newline = if app.shift_enter {
            "Shift+Enter"
        } else {
            "Alt+Enter"
        };
        let keys = match app.focus {
            Focus::Input => format!(
                " Enter send · {newline} newline · Ctrl+C stop/quit · Tab focus · Alt+? help · Ctrl+Z suspend"
            ),
            _ => " ? help · p pause · t theme · [/] sparsity · +/- budget · q quit · Esc → input · Ctrl+Z suspend"
                .to_string(),
        };
        Line::styled(keys, app.theme.dim())
    };
    Paragraph::new(text).render(area, buf);
}

fn draw_status(app: &App, area: Rect, buf: &mut ratatui::buffer::Buffer) {
    let st = app.theme.status();
    let state = match &app.mode {
        Mode::Replay {
            speed, finished, ..
        } => {
            if *finished {
                "replay done".to_string()
            } else {
                format!("replay ×{speed}")
            }
        }
        Mode::Live if app.preparing.is_some() => {
            format!("● {}", app.preparing.as_ref().map_or("", |p| &p.1))
        }
        Mode::Live if app.generating => match app.metrics.decode.last() {
            Some(v) => format!("● {v:.1} tok/s"),
            None => "● answering".to_string(),
        },
        Mode::Live => match app.last {
            Some(l) => format!("{:.1} tok/s", l.gen_tok_s),
            None => "ready".to_string(),
        },
    };
    let mut text = format!(
        " {state} │ {} │ ctx {}/{} │ {} ",
        display(&app.model),
        app.ctx_used,
        app.n_ctx,
        display(&app.sampler)
    );
    if app.metrics.dropped > 0 {
        text.push_str(&format!("│ {} samples dropped ", app.metrics.dropped));
    }
    Paragraph::new(Line::from(vec![Span::styled(text, st)]))
        .style(st)
        .render(area, buf);
}

fn draw_help(app: &App, area: Rect, buf: &mut ratatui::buffer::Buffer) {
    let w = area.width.min(64);
    // Wide: key and description side by side; narrow: the description under its key.
    let wide = w >= 60;
    let mut lines: Vec<Line> = Vec::new();
    let rows = HELP
        .iter()
        .map(|(k, d)| (*k, *d, app.theme.title()))
        .chain(COMMANDS.iter().map(|(c, d)| (*c, *d, app.theme.user())));
    for (k, d, ks) in rows {
        if wide {
            lines.push(Line::from(vec![
                Span::styled(format!("{k:<20}"), ks),
                Span::styled(d.to_string(), app.theme.text()),
            ]));
        } else {
            lines.push(Line::styled(k.to_string(), ks));
            lines.push(Line::styled(format!("  {d}"), app.theme.text()));
        }
    }
    lines.push(Line::styled(
        "Panel keys type text in the input: use Alt, or Tab to the panels.",
        app.theme.dim(),
    ));
    lines.push(Line::styled(
        "Sparsity and budget changes are made between answers: one asked during an answer applies from the next one.",
        app.theme.dim(),
    ));
    // As tall as the wrapped text (plus the border), when the screen allows.
    let text_rows: u16 = lines
        .iter()
        .map(|l| text_height(&l.to_string(), w.saturating_sub(2)))
        .sum();
    let h = area.height.min(text_rows + 2);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    Clear.render(r, buf);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .scroll((app.help_scroll, 0))
        .style(app.theme.base())
        .block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(app.theme.border_focus())
                .title(Span::styled(
                    " keys · ↑↓ scroll · Esc closes ",
                    app.theme.title_focus().add_modifier(Modifier::BOLD),
                )),
        )
        .render(r, buf);
}
