//! Text as the screen may show it. A TAB, ESC, CR, BEL or any other control character written to
//! the terminal acts instead of showing: a TAB jumps to the terminal's next tab stop while ratatui
//! counts one column, so the rest of the line spills across the panels' borders; an ESC starts an
//! escape sequence that can clear the screen. Text from the person (typed or pasted), the model's
//! answers, notes, file and model names all pass through [`display`] before they become
//! ratatui text, and [`scrub_buffer`] replaces whatever control character still reaches a frame.
//!
//! - TAB expands to spaces up to the next multiple of [`TAB_WIDTH`] columns from the start of
//!   its line (4, as code is usually indented; the panes are narrow).
//! - Other C0 characters and DEL show as their Unicode control pictures (ESC as `␛`, CR as `␍`,
//!   BEL as `␇`, DEL as `␡`), one column each; C1 characters (U+0080 to U+009F, which some
//!   terminals also obey) as `�`.
//! - A newline is kept: it separates lines, and every caller splits on it.

use ratatui::buffer::Buffer;
use std::borrow::Cow;
use unicode_width::UnicodeWidthChar;

/// Columns between tab stops.
pub const TAB_WIDTH: usize = 4;

/// What a control character (other than TAB and newline) shows as.
pub fn picture(c: char) -> char {
    match c as u32 {
        0x00..=0x1f => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        0x7f => '\u{2421}',
        _ => '\u{fffd}',
    }
}

/// Whether `c` needs to be replaced or expanded to be shown (newline excepted).
fn needs_care(c: char) -> bool {
    c != '\n' && c.is_control()
}

/// `text` ready to draw: TABs expanded (tab stops counted from each line's start), other control
/// characters shown as pictures. Borrows when there is nothing to change.
pub fn display(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_care) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut col = 0usize;
    for c in text.chars() {
        match c {
            '\n' => {
                out.push('\n');
                col = 0;
            }
            '\t' => {
                let n = TAB_WIDTH - col % TAB_WIDTH;
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            c if c.is_control() => {
                out.push(picture(c));
                col += 1;
            }
            c => {
                out.push(c);
                col += c.width().unwrap_or(0);
            }
        }
    }
    Cow::Owned(out)
}

/// Replaces any control character left in a drawn frame's cells with its picture: the last
/// line of defence for text that did not pass through [`display`] (ratatui counts such a cell
/// as one column, and so does its picture, so the layout is unchanged).
pub fn scrub_buffer(buf: &mut Buffer) {
    for cell in buf.content.iter_mut() {
        let sym = cell.symbol();
        if sym.chars().any(char::is_control) {
            let clean: String = sym
                .chars()
                .map(|c| if c.is_control() { picture(c) } else { c })
                .collect();
            cell.set_symbol(&clean);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;
    use unicode_width::UnicodeWidthStr;

    #[test]
    fn tabs_expand_to_the_next_stop_from_the_line_start() {
        assert_eq!(display("a\tb"), "a   b");
        assert_eq!(display("\tx"), "    x");
        assert_eq!(display("abcd\te"), "abcd    e");
        assert_eq!(display("ab\n\tc"), "ab\n    c");
        // Wide characters count their columns.
        assert_eq!(display("日\tx"), "日  x");
    }

    #[test]
    fn control_characters_show_as_pictures_one_column_each() {
        let s = display("x\u{1b}[2J\u{7}\r\u{7f}\u{9b}y");
        assert_eq!(s, "x␛[2J␇␍␡�y");
        assert!(!s.chars().any(char::is_control));
        assert_eq!(s.width(), 10);
    }

    #[test]
    fn clean_text_is_borrowed_unchanged() {
        assert!(matches!(display("plain, héllo\nworld"), Cow::Borrowed(_)));
    }

    #[test]
    fn scrub_buffer_leaves_no_control_character_in_a_frame() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 6, 1));
        buf.set_string(0, 0, "ab", ratatui::style::Style::default());
        // As a widget that writes cells itself (ratatui's Paragraph does) would leave it.
        buf[(2, 0)].set_symbol("\t");
        buf[(3, 0)].set_symbol("\u{1b}");
        scrub_buffer(&mut buf);
        let row: String = (0..6).map(|x| buf[(x, 0)].symbol().to_string()).collect();
        assert_eq!(row, "ab␉␛  ");
    }
}
