//! The message editor: a multi-line text buffer with a cursor. Enter is handled by the key map
//! (it sends); this only edits.

use unicode_width::UnicodeWidthStr;

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

    /// Moves to the previous (`-1`) or next (`1`) line, keeping the column where possible.
    /// Returns false when there is no such line.
    pub fn vertical(&mut self, dir: i32) -> bool {
        let start = self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[start..self.cursor].chars().count();
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
        let off: usize = line.chars().take(col).map(char::len_utf8).sum();
        self.cursor = target_start + off;
        true
    }

    /// Empties the editor and returns what it held.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    /// Lines of text and the cursor's (line, display column).
    pub fn lines_and_cursor(&self) -> (Vec<&str>, usize, usize) {
        let lines: Vec<&str> = self.text.split('\n').collect();
        let before = &self.text[..self.cursor];
        let row = before.matches('\n').count();
        let col = before[before.rfind('\n').map_or(0, |i| i + 1)..].width();
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
}
