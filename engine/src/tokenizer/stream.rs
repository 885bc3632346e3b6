//! Streaming detokenization: token pieces in, whole UTF-8 characters out.

use super::Tokenizer;

/// Turns a stream of token ids into text without ever splitting a UTF-8 character: bytes of a
/// character that is still incomplete are held back until the token completing it arrives. Bytes that
/// can never become valid UTF-8 are emitted as U+FFFD as soon as that is certain.
///
/// The concatenation of all `push` results and the final `flush` equals `Tokenizer::decode` of the
/// same ids (with the same `render_special`), except that `decode` on an SPM vocab with
/// `add_space_prefix` drops the leading space the encoder added to the first text token, while a
/// stream — usually the continuation of a prompt — keeps it.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    render_special: bool,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamDecoder {
    /// A decoder that renders control tokens as their text (llama.cpp's `token_to_piece(special=true)`).
    pub fn new() -> Self {
        StreamDecoder {
            pending: Vec::new(),
            render_special: true,
        }
    }

    /// Chooses whether control tokens are rendered as text (true) or as nothing.
    pub fn with_render_special(mut self, render_special: bool) -> Self {
        self.render_special = render_special;
        self
    }

    /// Adds one token; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        self.pending
            .extend_from_slice(tok.token_bytes(id, self.render_special));
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY-free: the prefix was just validated.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap());
                    match e.error_len() {
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                        // Bytes that cannot start or continue a character.
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + n);
                        }
                    }
                }
            }
        }
        out
    }

    /// Ends the stream: a dangling partial character becomes U+FFFD.
    pub fn flush(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
