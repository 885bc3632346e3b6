//! GPT-2 style byte-level BPE (`tokenizer.ggml.model = gpt2`).
//!
//! Only plain-text fragments reach this model: special tokens have already been cut out by the
//! caller (`Tokenizer::partition`), exactly as llama.cpp does before its BPE session. The pipeline is
//! the one we used to run through the `tokenizers` crate — `Split(regex, Isolated)` for each regex
//! of the `pre` spec, then `ByteLevel` (bytes to the GPT-2 printable alphabet, no prefix space, no
//! regex of its own), then its BPE model with the GGUF merges — transcribed here step for step, with
//! the same regex engine (`fancy-regex`) and the same merge loop, so that the ids are the same.
//!
//! Why not the `tokenizers` crate any more: memory. Its BPE model keeps the vocab twice as
//! `HashMap<String, u32>` and `HashMap<u32, String>` (one heap allocation per token each, on top of
//! our own copy of the texts) plus a merge map and a per-thread word cache; for a 49k-token vocab
//! that was ~9 MB of RSS, plus ~3 MB while building (the merges as `String` pairs, which its
//! builder takes) and ~3 MB more once its cache had seen a few pages of text, where this model
//! needs the merge table (~1 MB) and reads token texts from the shared compact `Vocab`.
//! `tests/tokenizer_golden.rs` checks the result against llama.cpp, and a test there compares it
//! with the `tokenizers` pipeline on many strings.

use super::pretokenize::PreSpec;
use super::vocab::{mix64, Vocab};
use crate::error::{Error, Result};
use fancy_regex::Regex;
use hashbrown::HashTable;
use std::collections::{BinaryHeap, HashMap};

/// One merge rule: `a b → new_id`, applied in `rank` order (lowest first).
#[derive(Clone, Copy)]
struct MergeRule {
    a: u32,
    b: u32,
    rank: u32,
    new_id: u32,
}

fn pair_hash(a: u32, b: u32) -> u64 {
    mix64((u64::from(a) << 32) | u64::from(b))
}

/// No token for this byte.
const NO_ID: u32 = u32::MAX;

pub(crate) struct BpeModel {
    /// The `pre` regexes, applied in order.
    regexes: Vec<Regex>,
    /// The token of each byte's GPT-2 character, or `NO_ID` (such bytes are dropped, as the
    /// `tokenizers` BPE drops characters it has no token and no unknown token for).
    byte_ids: Box<[u32; 256]>,
    /// Each byte's GPT-2 character (for the whole-word lookup of `ignore_merges`).
    byte_chars: [char; 256],
    /// `(a, b)` → rule: 16 bytes a rule, keys and values inline.
    merges: HashTable<MergeRule>,
    ignore_merges: bool,
}

/// A queued merge (the `tokenizers` `Merge`): ordered so that `BinaryHeap` pops the lowest rank,
/// then the leftmost position.
#[derive(PartialEq, Eq)]
struct Candidate {
    pos: usize,
    rank: u32,
    new_id: u32,
}

impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.rank.cmp(&self.rank).then_with(|| o.pos.cmp(&self.pos))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// A symbol of a word being merged; `len == 0` marks one merged into its left neighbour.
#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    len: u32,
    prev: isize,
    next: isize,
}

/// Buffers reused across the words of one `encode` call.
#[derive(Default)]
struct Scratch {
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Candidate>,
    chars: String,
}

impl BpeModel {
    /// Builds the model. `merges` are the raw GGUF merge strings.
    pub(crate) fn new<'a>(
        spec: &PreSpec,
        vocab: &Vocab,
        merges: impl ExactSizeIterator<Item = &'a str>,
    ) -> Result<Self> {
        let mut table: HashTable<MergeRule> = HashTable::with_capacity(merges.len());
        let mut joined = String::new();
        let mut rank = 0u32;
        for (i, m) in merges.enumerate() {
            // llama.cpp splits at the first space after the first byte (a merge may start with ' ').
            let pos = m
                .as_bytes()
                .iter()
                .skip(1)
                .position(|&c| c == b' ')
                .map(|p| p + 1)
                .ok_or_else(|| {
                    Error::Tokenizer(format!(
                        "tokenizer.ggml.merges[{i}] = {m:?} is not two tokens separated by a space"
                    ))
                })?;
            let (a, b) = (&m[..pos], &m[pos + 1..]);
            if b.is_empty() {
                return Err(Error::Tokenizer(format!(
                    "tokenizer.ggml.merges[{i}] = {m:?} has an empty half"
                )));
            }
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            // A merge whose halves or result are not tokens can never produce a token; the
            // `tokenizers` model refused them, so they are dropped, and ranks count the rest.
            let (Some(a), Some(b), Some(new_id)) = (vocab.id(a), vocab.id(b), vocab.id(&joined))
            else {
                continue;
            };
            let rule = MergeRule { a, b, rank, new_id };
            rank += 1;
            let h = pair_hash(a, b);
            // A pair listed twice keeps its last rank (the `tokenizers` map was built by inserting
            // in order).
            match table.find_mut(h, |r| r.a == a && r.b == b) {
                Some(r) => *r = rule,
                None => {
                    table.insert_unique(h, rule, |r| pair_hash(r.a, r.b));
                }
            }
        }
        table.shrink_to_fit(|r| pair_hash(r.a, r.b));

        let byte_chars = bytes_to_unicode();
        let mut byte_ids = Box::new([NO_ID; 256]);
        let mut buf = [0u8; 4];
        for (slot, c) in byte_ids.iter_mut().zip(byte_chars) {
            *slot = vocab.id(c.encode_utf8(&mut buf)).unwrap_or(NO_ID);
        }

        let mut regexes = Vec::with_capacity(spec.regexes.len());
        for re in spec.regexes {
            regexes.push(Regex::new(re).map_err(|e| {
                Error::Tokenizer(format!("pre-tokenizer regex {re:?} ({}): {e}", spec.family))
            })?);
        }
        Ok(BpeModel {
            regexes,
            byte_ids,
            byte_chars,
            merges: table,
            ignore_merges: spec.ignore_merges,
        })
    }

    fn rule(&self, a: u32, b: u32) -> Option<&MergeRule> {
        self.merges.find(pair_hash(a, b), |r| r.a == a && r.b == b)
    }

    /// Tokenizes one plain-text fragment, appending ids.
    pub(crate) fn encode(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        self.split(0, vocab, text, &mut Scratch::default(), out);
        Ok(())
    }

    /// `Split(regex, Isolated)` with `regexes[level]` on `piece`, each resulting piece split by the
    /// next regexes and then encoded, left to right — the order in which the `tokenizers` pipeline,
    /// which splits the whole text by one regex before applying the next, emits them. Depth first,
    /// so that no list of all the words of the text is ever built: the input can be large.
    ///
    /// As in `tokenizers`, the pieces are the matches and the text between them, empty ones
    /// dropped, and a regex error (fancy-regex's backtrack limit) ends the matching: the rest of the
    /// piece stays one unmatched piece.
    fn split(&self, level: usize, vocab: &Vocab, piece: &str, s: &mut Scratch, out: &mut Vec<u32>) {
        let Some(re) = self.regexes.get(level) else {
            self.encode_word(vocab, piece.as_bytes(), s, out);
            return;
        };
        let mut prev = 0;
        for m in re.find_iter(piece) {
            let Ok(m) = m else { break };
            if prev != m.start() {
                self.split(level + 1, vocab, &piece[prev..m.start()], s, out);
            }
            if m.start() != m.end() {
                self.split(level + 1, vocab, m.as_str(), s, out);
            }
            prev = m.end();
        }
        if prev != piece.len() {
            self.split(level + 1, vocab, &piece[prev..], s, out);
        }
    }

    /// One pre-tokenized word: the `tokenizers` BPE `tokenize` (without its cache, which does not
    /// change the result).
    fn encode_word(&self, vocab: &Vocab, word: &[u8], s: &mut Scratch, out: &mut Vec<u32>) {
        if self.ignore_merges {
            s.chars.clear();
            s.chars
                .extend(word.iter().map(|&b| self.byte_chars[b as usize]));
            if let Some(id) = vocab.id(&s.chars) {
                out.push(id);
                return;
            }
        }
        let symbols = &mut s.symbols;
        symbols.clear();
        for &b in word {
            let id = self.byte_ids[b as usize];
            if id == NO_ID {
                continue;
            }
            let n = symbols.len() as isize;
            if let Some(last) = symbols.last_mut() {
                last.next = n;
            }
            symbols.push(Symbol {
                id,
                len: 1,
                prev: n - 1,
                next: -1,
            });
        }

        // `Word::merge_all`, without dropout.
        let queue = &mut s.queue;
        queue.clear();
        for (pos, w) in symbols.windows(2).enumerate() {
            if let Some(r) = self.rule(w[0].id, w[1].id) {
                queue.push(Candidate {
                    pos,
                    rank: r.rank,
                    new_id: r.new_id,
                });
            }
        }
        while let Some(top) = queue.pop() {
            let cur = symbols[top.pos];
            if cur.len == 0 || cur.next == -1 {
                continue;
            }
            let next_pos = cur.next as usize;
            let right = symbols[next_pos];
            // A stale entry: the pair at this position is no longer the one queued.
            if self
                .rule(cur.id, right.id)
                .is_none_or(|r| r.new_id != top.new_id)
            {
                continue;
            }
            let merged = Symbol {
                id: top.new_id,
                len: cur.len + right.len,
                prev: cur.prev,
                next: right.next,
            };
            symbols[top.pos] = merged;
            symbols[next_pos].len = 0;
            if right.next > -1 && (right.next as usize) < symbols.len() {
                symbols[right.next as usize].prev = top.pos as isize;
            }
            if merged.prev >= 0 {
                let prev = merged.prev as usize;
                if let Some(r) = self.rule(symbols[prev].id, merged.id) {
                    queue.push(Candidate {
                        pos: prev,
                        rank: r.rank,
                        new_id: r.new_id,
                    });
                }
            }
            let next = merged.next as usize;
            if next < symbols.len() {
                if let Some(r) = self.rule(merged.id, symbols[next].id) {
                    queue.push(Candidate {
                        pos: top.pos,
                        rank: r.rank,
                        new_id: r.new_id,
                    });
                }
            }
        }
        out.extend(symbols.iter().filter(|s| s.len != 0).map(|s| s.id));
    }
}

/// GPT-2's byte ↔ printable-character table: the character that stands for each byte.
pub(crate) fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            let c = char::from_u32(256 + n).unwrap();
            n += 1;
            c
        };
    }
    table
}

/// Decodes a byte-level token string to the bytes it stands for, appending them to `out`.
/// Characters outside the GPT-2 alphabet (which a well-formed vocab never has in NORMAL tokens) are
/// kept as their UTF-8.
pub(crate) fn byte_level_decode(text: &str, char_to_byte: &HashMap<char, u8>, out: &mut Vec<u8>) {
    for c in text.chars() {
        match char_to_byte.get(&c) {
            Some(&b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}
