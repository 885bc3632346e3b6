//! SentencePiece-style tokenization of `tokenizer.ggml.model = llama` vocabs, as llama.cpp does it.
//!
//! Hand-written on purpose: llama.cpp's SPM tokenizer is not SentencePiece's Unigram (Viterbi) but a
//! greedy bigram merge — start from single UTF-8 characters, repeatedly merge the adjacent pair whose
//! concatenation is a vocab token with the highest *score*, ties to the leftmost pair — with any
//! left-over character that is not a token emitted as `<0xNN>` byte tokens. The `tokenizers` crate
//! has no model with these semantics: its Unigram is Viterbi, and a BPE with merges derived from the
//! vocab cannot express "any pair whose concatenation is a token may merge, ranked by the merged
//! token's score, ties leftmost" (its merges have distinct ranks, and byte fallback happens before
//! merging, so a character absent from the vocab could never merge). This file is the ~80-line
//! algorithm of `llm_tokenizer_spm_session`, transcribed.

use super::vocab::Vocab;
use crate::error::{Error, Result};
use std::collections::BinaryHeap;

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then the leftmost pair.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.left.cmp(&self.left))
    }
}

/// Tokenizes `text` (already space-escaped to '▁' and prefixed as llama.cpp does), appending ids.
pub(crate) fn tokenize(
    text: &str,
    vocab: &Vocab,
    scores: &[f32],
    byte_tokens: &[Option<u32>; 256],
    unk: Option<u32>,
    out: &mut Vec<u32>,
) -> Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    let n_chars = text.chars().count();
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: (i + 1 < n_chars).then_some(i + 1),
        });
    }

    let mut heap = BinaryHeap::new();
    let try_add =
        |heap: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: Option<usize>, r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            let (a, b) = (symbols[l], symbols[r]);
            let piece = &text[a.start..a.start + a.len + b.len];
            if let Some(id) = vocab.id(piece) {
                heap.push(Bigram {
                    left: l,
                    right: r,
                    score: scores.get(id as usize).copied().unwrap_or(0.0),
                    size: piece.len(),
                });
            }
        };
    for i in 1..symbols.len() {
        try_add(&mut heap, &symbols, Some(i - 1), Some(i));
    }
    while let Some(bg) = heap.pop() {
        let (l, r) = (symbols[bg.left], symbols[bg.right]);
        // A stale entry: one side was merged since it was pushed.
        if l.len == 0 || r.len == 0 || l.len + r.len != bg.size {
            continue;
        }
        symbols[bg.left].len += r.len;
        symbols[bg.right].len = 0;
        symbols[bg.left].next = r.next;
        if let Some(n) = r.next {
            symbols[n].prev = Some(bg.left);
        }
        let lp = symbols[bg.left].prev;
        let ln = symbols[bg.left].next;
        try_add(&mut heap, &symbols, lp, Some(bg.left));
        try_add(&mut heap, &symbols, Some(bg.left), ln);
    }

    // Every merged symbol is a token by construction; single characters may not be, and become
    // bytes (llama.cpp's `resegment` falls through to `byte_to_token`).
    let mut i = Some(0);
    while let Some(k) = i {
        let s = symbols[k];
        let piece = &text[s.start..s.start + s.len];
        if let Some(id) = vocab.id(piece) {
            out.push(id);
        } else {
            for &b in piece.as_bytes() {
                match byte_tokens[b as usize].or(unk) {
                    Some(id) => out.push(id),
                    None => {
                        return Err(Error::Tokenizer(format!(
                            "byte 0x{b:02X} of {piece:?} has no <0x{b:02X}> token and the vocab has no unknown token"
                        )))
                    }
                }
            }
        }
        i = s.next;
    }
    Ok(())
}
