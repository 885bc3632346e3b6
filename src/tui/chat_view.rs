//! The chat pane: messages wrapped to the pane's width, scrolled from the bottom so new text stays
//! in view unless the person scrolled back.

use super::app::{App, Focus, Role};
use super::safe_text;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget};
use unicode_width::UnicodeWidthChar;

/// Wraps `text` at `width` columns: at spaces where possible, inside words when a word is longer
/// than a line. Explicit newlines are kept.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut line_w = 0usize;
        for word in para.split_inclusive(' ') {
            let ww: usize = word.chars().map(|c| c.width().unwrap_or(0)).sum();
            let trimmed_w = ww - usize::from(word.ends_with(' '));
            if line_w > 0 && line_w + trimmed_w > width {
                out.push(line.trim_end().to_string());
                line.clear();
                line_w = 0;
            }
            for c in word.chars() {
                let cw = c.width().unwrap_or(0);
                if line_w + cw > width && c != ' ' {
                    out.push(std::mem::take(&mut line));
                    line_w = 0;
                }
                line.push(c);
                line_w += cw;
            }
        }
        out.push(line.trim_end().to_string());
    }
    out
}

fn role_style(app: &App, role: Role) -> Style {
    match role {
        Role::User => app.theme.user(),
        Role::Assistant => app.theme.assistant(),
        Role::Notice => app.theme.notice(),
        Role::Error => app.theme.error(),
    }
}

/// All lines of the conversation at this width.
fn lines(app: &App, width: usize) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    for (i, m) in app.messages.iter().enumerate() {
        if i > 0 && m.role != Role::Notice {
            out.push(Line::default());
        }
        let (prefix, text) = match m.role {
            Role::User => ("> ", m.text.as_str()),
            Role::Assistant if m.text.is_empty() && app.generating => ("", "…"),
            Role::Assistant => ("", m.text.trim_start_matches('\n')),
            Role::Notice => ("· ", m.text.as_str()),
            Role::Error => ("! ", m.text.as_str()),
        };
        let style = role_style(app, m.role);
        let indent = prefix.chars().count();
        // TABs and control characters (pasted, or in an answer) made safe to draw first.
        let text = safe_text::display(text);
        for (j, l) in wrap(&text, width.saturating_sub(indent))
            .into_iter()
            .enumerate()
        {
            let p = if j == 0 {
                prefix.to_string()
            } else {
                " ".repeat(indent)
            };
            out.push(Line::from(vec![
                Span::styled(p, style),
                Span::styled(l, style),
            ]));
        }
    }
    out
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let focused = app.focus == Focus::Chat;
    let inner_probe = Block::default().borders(Borders::ALL).inner(area);
    let all = lines(app, inner_probe.width as usize);
    let h = inner_probe.height as usize;
    let max_scroll = all.len().saturating_sub(h);
    let scroll = app.scroll.min(max_scroll);
    app.chat_view.set((h, all.len()));
    let mut title = " chat ".to_string();
    if scroll > 0 {
        title = format!(" chat ↑{scroll} (End: latest) ");
    }
    let (bs, ts) = if focused {
        (app.theme.border_focus(), app.theme.title_focus())
    } else {
        (app.theme.border(), app.theme.title())
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(bs)
        .title(Span::styled(title, ts));
    let start = all.len().saturating_sub(h + scroll);
    let visible: Vec<Line> = all.into_iter().skip(start).take(h).collect();
    if visible.is_empty() {
        let hint = if app.is_replay() {
            "replaying a recording…"
        } else {
            "Type a message below and press Enter. ? or /help lists every key."
        };
        Paragraph::new(Line::styled(hint, app.theme.dim()))
            .wrap(ratatui::widgets::Wrap { trim: true })
            .block(block)
            .render(area, buf);
        return;
    }
    Paragraph::new(visible).block(block).render(area, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_words_and_long_words() {
        assert_eq!(wrap("aaa bbb ccc", 7), vec!["aaa bbb", "ccc"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("a\n\nb", 5), vec!["a", "", "b"]);
        assert_eq!(wrap("", 5), vec![""]);
    }
}
