//! The message editor: a multi-line text buffer with a cursor. Enter is handled by the key map
//! (it sends); this only edits.
//!
//! The text keeps what was typed or pasted, TABs included (they reach the model as they are);
//! what is drawn and where the cursor goes are in display columns of [`safe_text::display`], so a
//! TAB or a control character never puts the cursor anywhere but after what it shows as.

use super::safe_text;
use std::borrow::Cow;
use unicode_width::UnicodeWidthStr;

/// Display columns of `line_prefix` (the text from a line's start), as drawn.
fn columns(line_prefix: &str) -> usize {
    safe_text::display(line_prefix).width()
}

#[derive(Debug, Clone, Default)]
pub struct Input {
    text: String,
    /// Byte offset of the cursor, always on a character boundary.
    cursor: usize,
}

impl Input {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn insert(&mut self, c: char) {
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    pub fn insert_str(&mut self, s: &str) {
        let s = s.replace("\r\n", "\n").replace('\r', "\n");
        self.text.insert_str(self.cursor, &s);
        self.cursor += s.len();
    }

    pub fn backspace(&mut self) {
        if let Some(c) = self.text[..self.cursor].chars().next_back() {
            self.cursor -= c.len_utf8();
            self.text.remove(self.cursor);
        }
    }

    pub fn delete(&mut self) {
        if self.cursor < self.text.len() {
            self.text.remove(self.cursor);
        }
    }

    pub fn left(&mut self) {
        if let Some(c) = self.text[..self.cursor].chars().next_back() {
            self.cursor -= c.len_utf8();
        }
    }

    pub fn right(&mut self) {
        if let Some(c) = self.text[self.cursor..].chars().next() {
            self.cursor += c.len_utf8();
        }
    }

    pub fn line_start(&mut self) {
        self.cursor = self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1);
    }

    pub fn line_end(&mut self) {
        self.cursor = self.text[self.cursor..]
            .find('\n')
            .map_or(self.text.len(), |i| self.cursor + i);
    }

    /// Moves to the previous (`-1`) or next (`1`) line, keeping the display column where
    /// possible (the nearest character boundary at or before it). Returns false when there is no
    /// such line.
    pub fn vertical(&mut self, dir: i32) -> bool {
        let start = self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1);
        let col = columns(&self.text[start..self.cursor]);
        let target_start = if dir < 0 {
            if start == 0 {
                return false;
            }
            self.text[..start - 1].rfind('\n').map_or(0, |i| i + 1)
        } else {
            match self.text[self.cursor..].find('\n') {
                Some(i) => self.cursor + i + 1,
                None => return false,
            }
        };
        let line_len = self.text[target_start..]
            .find('\n')
            .unwrap_or(self.text.len() - target_start);
        let line = &self.text[target_start..target_start + line_len];
        let off = line
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .take_while(|&end| columns(&line[..end]) <= col)
            .last()
            .unwrap_or(0);
        self.cursor = target_start + off;
        true
    }

    /// Empties the editor and returns what it held.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    /// Lines as drawn (TABs expanded, control characters as pictures) and the cursor's (line,
    /// display column) in them.
    pub fn lines_and_cursor(&self) -> (Vec<Cow<'_, str>>, usize, usize) {
        let lines = self.text.split('\n').map(safe_text::display).collect();
        let before = &self.text[..self.cursor];
        let row = before.matches('\n').count();
        let col = columns(&before[before.rfind('\n').map_or(0, |i| i + 1)..]);
        (lines, row, col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_multibyte_text_and_lines() {
        let mut i = Input::default();
        for c in "héllo".chars() {
            i.insert(c);
        }
        i.backspace();
        i.left();
        i.insert('X');
        assert_eq!(i.text(), "hélXl");
        i.line_end();
        i.insert('\n');
        i.insert_str("ab");
        assert!(i.vertical(-1));
        assert_eq!(i.lines_and_cursor().1, 0);
        assert_eq!(i.lines_and_cursor().2, 2);
        assert!(!i.vertical(-1));
        assert!(i.vertical(1));
        assert_eq!(i.take(), "hélXl\nab");
        assert!(i.text().is_empty());
    }

    #[test]
    fn a_tab_is_kept_in_the_text_and_the_cursor_follows_its_expansion() {
        let mut i = Input::default();
        i.insert_str("a\tb");
        let (lines, row, col) = i.lines_and_cursor();
        assert_eq!(lines, vec!["a   b"]);
        assert_eq!((row, col), (0, 5));
        i.left();
        assert_eq!(
            i.lines_and_cursor().2,
            4,
            "before b: after the tab's spaces"
        );
        i.left();
        assert_eq!(i.lines_and_cursor().2, 1, "before the tab: after a");
        assert_eq!(i.text(), "a\tb", "the model gets the TAB itself");
    }

    #[test]
    fn control_characters_take_one_column_and_vertical_moves_keep_display_columns() {
        let mut i = Input::default();
        i.insert_str("\u{1b}[1m\n\tx");
        assert_eq!(i.lines_and_cursor().0, vec!["␛[1m", "    x"]);
        assert_eq!(i.lines_and_cursor().2, 5);
        // Up from column 5 (after "    x"): the first line is 4 columns, so its end.
        assert!(i.vertical(-1));
        assert_eq!(i.lines_and_cursor().2, 4);
        i.line_start();
        i.right();
        // Down from column 1: inside the TAB's expansion, so before the TAB.
        assert!(i.vertical(1));
        assert_eq!(i.lines_and_cursor().2, 0);
        i.right();
        assert_eq!(i.lines_and_cursor().2, 4);
    }
}
