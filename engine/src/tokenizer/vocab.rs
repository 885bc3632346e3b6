//! The vocab, stored compactly: every token's text and piece in two contiguous buffers, and a
//! text → id index that holds only ids.
//!
//! Why not `Vec<String>` + `HashMap<String, u32>`: a vocab is tens of thousands of strings of a
//! few bytes each, and one heap allocation per string costs more than the string (glibc: a 6-byte
//! string takes a 32-byte chunk, plus the 24-byte `String` header). Two such copies of a 49k-token
//! vocab, plus the pieces as `Vec<Vec<u8>>`, were ~9 MB of RSS; this layout is ~1 MB: the bytes
//! themselves, one `u32` end offset per token for the texts and one for the pieces, and a hash
//! table of `u32` ids (the key text is read back from the buffer when probing).

use crate::error::{Error, Result};
use crate::gguf::Value;
use hashbrown::HashTable;

pub(crate) struct Vocab {
    /// All token texts, concatenated in id order.
    texts: String,
    /// `texts[text_ends[i - 1]..text_ends[i]]` is token i's text (the start of token 0 is 0).
    text_ends: Vec<u32>,
    /// All pieces (the bytes a token decodes to), concatenated in id order.
    pieces: Vec<u8>,
    /// End offsets into `pieces`, as `text_ends`.
    piece_ends: Vec<u32>,
    /// Text → id: the table holds ids; hashing and equality go through `texts`.
    index: HashTable<u32>,
}

/// Hash of a token text: FxHash-style, eight bytes at a time, then a full avalanche (murmur3's
/// finalizer) so that both the low bits (bucket index) and the high bits (the tag bytes of
/// `hashbrown`) depend on every input byte. Much cheaper than SipHash on short strings; the table
/// is fixed when built, so crafted input cannot degrade it.
pub(crate) fn hash_bytes(b: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = b.len() as u64;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
    }
    mix64(h)
}

/// murmur3's 64-bit finalizer.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Vocab {
    /// Stores the `tokenizer.ggml.tokens` texts (already checked to be strings) and indexes them.
    /// An empty text becomes `[EMPTY_<id>]`, as llama.cpp names it; a text present twice is an
    /// error. Pieces are empty until `set_pieces`.
    pub(crate) fn new(raw: &[Value]) -> Result<Self> {
        let n = raw.len();
        let text = |i: usize| raw[i].as_str().expect("checked by the caller");
        // Exact sizes first: no reallocation while filling, so the peak is the final size.
        let mut total = 0usize;
        for i in 0..n {
            let t = text(i);
            total += if t.is_empty() {
                format!("[EMPTY_{i}]").len()
            } else {
                t.len()
            };
        }
        if total > u32::MAX as usize {
            return Err(Error::Tokenizer(format!(
                "tokenizer.ggml.tokens holds {total} bytes of text, more than 4 GiB"
            )));
        }
        let mut texts = String::with_capacity(total);
        let mut text_ends = Vec::with_capacity(n);
        for i in 0..n {
            let t = text(i);
            if t.is_empty() {
                texts.push_str(&format!("[EMPTY_{i}]"));
            } else {
                texts.push_str(t);
            }
            text_ends.push(texts.len() as u32);
        }

        let mut index = HashTable::with_capacity(n);
        for id in 0..n as u32 {
            let t = span(&texts, &text_ends, id);
            let h = hash_bytes(t.as_bytes());
            if let Some(&prev) = index.find(h, |&j| span(&texts, &text_ends, j) == t) {
                return Err(Error::Tokenizer(format!(
                    "tokenizer.ggml.tokens has {t:?} twice (ids {prev} and {id})"
                )));
            }
            index.insert_unique(h, id, |&j| {
                hash_bytes(span(&texts, &text_ends, j).as_bytes())
            });
        }
        Ok(Vocab {
            texts,
            text_ends,
            pieces: Vec::new(),
            piece_ends: vec![0; n],
            index,
        })
    }

    /// Fills the pieces: `piece(id, text, out)` appends token id's piece to `out`.
    pub(crate) fn set_pieces(&mut self, mut piece: impl FnMut(u32, &str, &mut Vec<u8>)) {
        // A piece is never longer than its text (byte-level characters and '▁' shrink to one
        // byte, `<0xNN>` to one byte, the rest is copied), so the text size is a safe capacity.
        let mut pieces = Vec::with_capacity(self.texts.len());
        for id in 0..self.len() as u32 {
            piece(id, self.text(id), &mut pieces);
            self.piece_ends[id as usize] = pieces.len() as u32;
        }
        pieces.shrink_to_fit();
        self.pieces = pieces;
    }

    pub(crate) fn len(&self) -> usize {
        self.text_ends.len()
    }

    /// Token id's text. Panics if `id` is out of range.
    pub(crate) fn text(&self, id: u32) -> &str {
        span(&self.texts, &self.text_ends, id)
    }

    /// Token id's piece. Panics if `id` is out of range.
    pub(crate) fn piece(&self, id: u32) -> &[u8] {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.piece_ends[i - 1] };
        &self.pieces[start as usize..self.piece_ends[i] as usize]
    }

    /// The id of a text.
    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        self.index
            .find(hash_bytes(text.as_bytes()), |&j| self.text(j) == text)
            .copied()
    }
}

fn span<'a>(texts: &'a str, ends: &[u32], id: u32) -> &'a str {
    let i = id as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] };
    &texts[start as usize..ends[i] as usize]
}
