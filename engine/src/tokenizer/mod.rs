//! Tokenizer built from GGUF metadata, reproducing llama.cpp's `llama_tokenize` / `llama_detokenize`.
//!
//! Two vocab kinds are supported:
//! - `gpt2`: byte-level BPE (`bpe.rs`: the `tokenizers` crate's pipeline, transcribed to keep the
//!   vocab in memory once) after the `pre` regex split (`pretokenize.rs`);
//! - `llama`: llama.cpp's SentencePiece-style greedy merge by score with byte fallback (`spm.rs`,
//!   hand-written; the reason is in that file).
//!
//! Special tokens are handled here, for both kinds, the way llama.cpp's `tokenizer_st_partition`
//! does: every CONTROL, USER_DEFINED and UNKNOWN token, longest text first, cuts the text into
//! fragments; plain fragments are then tokenized one by one. Cutting them out ourselves rather than
//! through `tokenizers`' added-vocabulary keeps the two kinds identical and the matching order (longest
//! token first, then leftmost) exactly llama.cpp's. With `parse_special = false` only USER_DEFINED
//! tokens are cut out.
//!
//! Not reproduced: llama.cpp's per-model LSTRIP/RSTRIP token attributes (set by model name for
//! jina/phi-3 only) and the `clean_spaces` post-processing of `llama_detokenize` (off for the SmolLM,
//! Qwen2 and SPM families; `decode` here is the plain concatenation of pieces).

mod bpe;
pub mod pretokenize;
mod spm;
mod stream;
mod vocab;

pub use pretokenize::{pre_spec, PreSpec, KNOWN_PRE};
pub use stream::StreamDecoder;

use crate::error::{Error, Result};
use crate::gguf::{Metadata, Value};
use std::collections::HashMap;
use vocab::Vocab;

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
pub mod token_type {
    pub const UNDEFINED: i64 = 0;
    pub const NORMAL: i64 = 1;
    pub const UNKNOWN: i64 = 2;
    pub const CONTROL: i64 = 3;
    pub const USER_DEFINED: i64 = 4;
    pub const UNUSED: i64 = 5;
    pub const BYTE: i64 = 6;
}

/// What a token is, after llama.cpp's fix-ups (control-looking EOG tokens forced to CONTROL...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAttr {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenAttr {
    fn from_type(t: i64) -> Self {
        match t {
            token_type::NORMAL => TokenAttr::Normal,
            token_type::UNKNOWN => TokenAttr::Unknown,
            token_type::CONTROL => TokenAttr::Control,
            token_type::USER_DEFINED => TokenAttr::UserDefined,
            token_type::UNUSED => TokenAttr::Unused,
            token_type::BYTE => TokenAttr::Byte,
            _ => TokenAttr::Undefined,
        }
    }
}

/// The vocab kind (`tokenizer.ggml.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabKind {
    /// `llama`: SentencePiece-style.
    Spm,
    /// `gpt2`: byte-level BPE.
    Bpe,
}

enum Model {
    Spm {
        scores: Vec<f32>,
        byte_tokens: Box<[Option<u32>; 256]>,
    },
    Bpe(Box<bpe::BpeModel>),
}

/// A tokenizer for one GGUF model.
pub struct Tokenizer {
    kind: VocabKind,
    pre: Option<String>,
    /// Token texts, their pieces (the bytes of each token as rendered with
    /// `render_special = true`) and the text → id index, stored compactly.
    vocab: Vocab,
    attrs: Vec<TokenAttr>,
    /// CONTROL, USER_DEFINED and UNKNOWN tokens, longest text first.
    specials: Vec<u32>,
    model: Model,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    eog: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("pre", &self.pre)
            .field("n_vocab", &self.vocab.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eog", &self.eog)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .finish()
    }
}

/// Texts llama.cpp takes for an end-of-turn token when `tokenizer.ggml.eot_token_id` is absent.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// Texts llama.cpp treats as end-of-generation whatever the metadata says.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

enum Frag {
    Text(usize, usize),
    Token(u32),
}

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata.
    pub fn from_gguf(md: &Metadata) -> Result<Self> {
        let model_name = md
            .str("tokenizer.ggml.model")?
            .ok_or_else(|| Error::Tokenizer("missing metadata 'tokenizer.ggml.model'".into()))?;
        let kind = match model_name {
            "llama" => VocabKind::Spm,
            "gpt2" => VocabKind::Bpe,
            other => {
                return Err(Error::Tokenizer(format!(
                    "tokenizer.ggml.model = '{other}' is not supported (supported: 'llama' (SentencePiece), 'gpt2' (byte-level BPE))"
                )))
            }
        };
        let raw_tokens = str_items(md, "tokenizer.ggml.tokens")?
            .ok_or_else(|| Error::Tokenizer("missing metadata 'tokenizer.ggml.tokens'".into()))?;
        let n = raw_tokens.len();
        if n == 0 {
            return Err(Error::Tokenizer("tokenizer.ggml.tokens is empty".into()));
        }
        if n > u32::MAX as usize / 2 {
            return Err(Error::Tokenizer(format!(
                "vocab of {n} tokens is too large"
            )));
        }
        let scores = md.f32_array("tokenizer.ggml.scores")?;
        if let Some(s) = &scores {
            if s.len() != n {
                return Err(Error::Tokenizer(format!(
                    "tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {n}",
                    s.len()
                )));
            }
        }
        let types = int_items(md, "tokenizer.ggml.token_type")?;
        if let Some(t) = &types {
            if t.len() != n {
                return Err(Error::Tokenizer(format!(
                    "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {n}",
                    t.len()
                )));
            }
        }

        let mut vocab = Vocab::new(raw_tokens)?;
        let mut attrs: Vec<TokenAttr> = match types {
            Some(t) => t
                .iter()
                .map(|v| TokenAttr::from_type(v.as_i64().expect("checked by int_items")))
                .collect(),
            None => vec![TokenAttr::Normal; n],
        };

        // Flags and defaults, per llama.cpp.
        let pre = md.str("tokenizer.ggml.pre")?.map(str::to_string);
        let spec = match kind {
            VocabKind::Bpe => Some(pre_spec(pre.as_deref())?),
            VocabKind::Spm => None,
        };
        let (mut bos, mut eos, mut unk) = match kind {
            VocabKind::Spm => (Some(1), Some(2), Some(0)),
            VocabKind::Bpe => (Some(11), Some(11), None),
        };
        if spec.as_ref().is_some_and(|s| s.no_bos) {
            bos = None;
        }
        // Defaults that do not exist in a tiny vocab are no token at all.
        for d in [&mut bos, &mut eos, &mut unk] {
            if d.is_some_and(|id| id as usize >= n) {
                *d = None;
            }
        }
        let id_key = |key: &str| -> Result<Option<u32>> {
            let full = format!("tokenizer.ggml.{key}");
            match md.u64(&full)? {
                None => Ok(None),
                Some(v) if v < n as u64 => Ok(Some(v as u32)),
                Some(v) => Err(Error::Tokenizer(format!(
                    "{full} = {v} is out of range: the vocab has {n} tokens"
                ))),
            }
        };
        if let Some(v) = id_key("bos_token_id")? {
            bos = Some(v);
        }
        if let Some(v) = id_key("eos_token_id")? {
            eos = Some(v);
        }
        if let Some(v) = id_key("unknown_token_id")? {
            unk = Some(v);
        }
        let mut eot = id_key("eot_token_id")?;
        let mut eom = id_key("eom_token_id")?;
        let pad = id_key("padding_token_id")?;
        let mut fim_eog = Vec::new();
        for key in [
            "seperator_token_id",
            "mask_token_id",
            "fim_pre_token_id",
            "fim_suf_token_id",
            "fim_mid_token_id",
        ] {
            id_key(key)?;
        }
        for key in ["fim_pad_token_id", "fim_rep_token_id", "fim_sep_token_id"] {
            if let Some(v) = id_key(key)? {
                fim_eog.push(v);
            }
        }

        let default_add_bos = match kind {
            VocabKind::Spm => true,
            VocabKind::Bpe => spec.as_ref().is_some_and(|s| s.add_bos_default),
        };
        let add_bos = md
            .bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(default_add_bos);
        let add_eos = md.bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        let add_space_prefix = md
            .bool("tokenizer.ggml.add_space_prefix")?
            .unwrap_or(kind == VocabKind::Spm);
        if add_bos && bos.is_none() {
            return Err(Error::Tokenizer(
                "tokenizer.ggml.add_bos_token is set but the vocab has no BOS token".into(),
            ));
        }
        if add_eos && eos.is_none() {
            return Err(Error::Tokenizer(
                "tokenizer.ggml.add_eos_token is set but the vocab has no EOS token".into(),
            ));
        }

        // Text-based detection of EOT/EOM and of end-of-generation tokens (llama.cpp's heuristics).
        // Such tokens are forced to CONTROL. llama.cpp also makes FIM pad/repo/sep tokens found by
        // text end generation; we only honour FIM ids given explicitly in the metadata.
        if eot.is_none() {
            eot = EOT_TEXTS.iter().find_map(|t| vocab.id(t));
        }
        if eom.is_none() {
            eom = vocab.id("<|eom_id|>");
        }
        for id in [eot, eom].into_iter().flatten() {
            attrs[id as usize] = TokenAttr::Control;
        }
        let mut eog = fim_eog;
        for t in EOG_TEXTS {
            if let Some(id) = vocab.id(t) {
                eog.push(id);
                attrs[id as usize] = TokenAttr::Control;
            }
        }
        for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(id) = vocab.id(t) {
                attrs[id as usize] = TokenAttr::UserDefined;
            }
        }
        eog.extend([eos, eot, eom].into_iter().flatten());
        eog.sort_unstable();
        eog.dedup();
        // gpt-oss: with <|return|> and <|call|>, <|end|> is not an end of generation.
        if let (Some(_), Some(_), Some(end)) = (
            vocab.id("<|return|>"),
            vocab.id("<|call|>"),
            vocab.id("<|end|>"),
        ) {
            eog.retain(|&x| x != end);
            attrs[end as usize] = TokenAttr::UserDefined;
        }

        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                matches!(
                    attrs[i as usize],
                    TokenAttr::Control | TokenAttr::UserDefined | TokenAttr::Unknown
                )
            })
            .collect();
        specials.sort_by_key(|&i| std::cmp::Reverse(vocab.text(i).len()));

        let model = match kind {
            VocabKind::Spm => {
                let mut byte_tokens: Box<[Option<u32>; 256]> = Box::new([None; 256]);
                for (b, slot) in byte_tokens.iter_mut().enumerate() {
                    *slot = vocab.id(&format!("<0x{b:02X}>")).or_else(|| {
                        // llama.cpp falls back to the byte itself as a one-character token.
                        std::str::from_utf8(&[b as u8])
                            .ok()
                            .and_then(|s| vocab.id(s))
                    });
                }
                Model::Spm {
                    scores: scores.unwrap_or_else(|| vec![0.0; n]),
                    byte_tokens,
                }
            }
            VocabKind::Bpe => {
                let merges = str_items(md, "tokenizer.ggml.merges")?.ok_or_else(|| {
                    Error::Tokenizer(
                        "missing metadata 'tokenizer.ggml.merges' (required for gpt2 vocabs)"
                            .into(),
                    )
                })?;
                let spec = spec.as_ref().expect("bpe has a spec");
                let merges = merges
                    .iter()
                    .map(|v| v.as_str().expect("checked by str_items"));
                Model::Bpe(Box::new(bpe::BpeModel::new(spec, &vocab, merges)?))
            }
        };

        // Pieces, as llama.cpp's token_to_piece(special = true).
        let char_to_byte: HashMap<char, u8> = bpe::bytes_to_unicode()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        vocab.set_pieces(|id, text, out| match (kind, attrs[id as usize]) {
            (_, TokenAttr::Control | TokenAttr::UserDefined | TokenAttr::Unknown) => {
                out.extend_from_slice(text.as_bytes())
            }
            (VocabKind::Spm, TokenAttr::Normal) => {
                out.extend_from_slice(text.replace('\u{2581}', " ").as_bytes())
            }
            (VocabKind::Spm, TokenAttr::Byte) => out.extend(parse_byte_token(text)),
            (VocabKind::Bpe, TokenAttr::Normal) => bpe::byte_level_decode(text, &char_to_byte, out),
            _ => {}
        });

        Ok(Tokenizer {
            kind,
            pre,
            vocab,
            attrs,
            specials,
            model,
            bos,
            eos,
            eot,
            eom,
            unk,
            pad,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
        })
    }

    /// Encodes text to ids (llama.cpp's `llama_tokenize(text, add_special, parse_special)`).
    ///
    /// `add_special` adds BOS/EOS as the model's flags say (`tokenizer.ggml.add_bos_token` /
    /// `add_eos_token`; when absent SPM adds BOS, gpt2 does not except for the Llama-3 family).
    /// `parse_special`: CONTROL/UNKNOWN tokens written in the text become single tokens; otherwise
    /// they are tokenized as plain text. USER_DEFINED tokens are always recognised.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let frags = self.partition(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.push(self.bos.expect("checked at construction"));
        }
        match &self.model {
            Model::Spm {
                scores,
                byte_tokens,
            } => {
                let mut prev_special = true;
                for f in &frags {
                    match *f {
                        Frag::Text(a, b) => {
                            let mut s = String::with_capacity(b - a + 3);
                            if self.add_space_prefix && prev_special {
                                s.push(' ');
                            }
                            s.push_str(&text[a..b]);
                            let s = s.replace(' ', "\u{2581}");
                            spm::tokenize(
                                &s,
                                &self.vocab,
                                scores,
                                byte_tokens,
                                self.unk,
                                &mut out,
                            )?;
                            prev_special = false;
                        }
                        Frag::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            Model::Bpe(m) => {
                for f in &frags {
                    match *f {
                        Frag::Text(a, b) => m.encode(&self.vocab, &text[a..b], &mut out)?,
                        Frag::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.push(self.eos.expect("checked at construction"));
        }
        Ok(out)
    }

    /// Cuts the text at special tokens (llama.cpp's `tokenizer_st_partition`).
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Frag> {
        let mut frags = vec![Frag::Text(0, text.len())];
        if text.is_empty() {
            return Vec::new();
        }
        for &id in &self.specials {
            let attr = self.attrs[id as usize];
            if !parse_special && matches!(attr, TokenAttr::Control | TokenAttr::Unknown) {
                continue;
            }
            let st = self.vocab.text(id);
            if st.is_empty() || !text.contains(st) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Frag::Text(mut a, b) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(p) = text[a..b].find(st) {
                    if p > 0 {
                        next.push(Frag::Text(a, a + p));
                    }
                    next.push(Frag::Token(id));
                    a += p + st.len();
                }
                if a < b {
                    next.push(Frag::Text(a, b));
                }
            }
            frags = next;
        }
        frags
    }

    /// The bytes a token stands for: byte-level decoded for gpt2; '▁' → ' ' and `<0xNN>` → the byte
    /// for SPM; the raw text for USER_DEFINED and UNKNOWN tokens, and for CONTROL tokens only when
    /// `render_special`. Out-of-range ids and UNUSED tokens give nothing.
    pub fn token_bytes(&self, id: u32, render_special: bool) -> &[u8] {
        let i = id as usize;
        match self.attrs.get(i) {
            None => &[],
            Some(TokenAttr::Control) if !render_special => &[],
            Some(_) => self.vocab.piece(id),
        }
    }

    /// Decodes ids to text (lossy UTF-8). With `add_space_prefix` (SPM), the first text token —
    /// the first token, or the second when the first is BOS — loses one leading space, the one the
    /// encoder added, so that `decode(encode(s))` gives `s` back. (llama.cpp's `llama_detokenize`
    /// strips it only from the very first token.)
    pub fn decode(&self, ids: &[u32], render_special: bool) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let first_text = usize::from(ids.first().is_some_and(|&i| Some(i) == self.bos));
        for (k, &id) in ids.iter().enumerate() {
            let mut p = self.token_bytes(id, render_special);
            if k == first_text && self.add_space_prefix {
                p = p.strip_prefix(b" ").unwrap_or(p);
            }
            bytes.extend_from_slice(p);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Number of tokens in the vocab.
    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The end-of-turn token (`tokenizer.ggml.eot_token_id`, or found by its text).
    pub fn eot_id(&self) -> Option<u32> {
        self.eot
    }

    /// The end-of-message token (`tokenizer.ggml.eom_token_id`, or `<|eom_id|>`).
    pub fn eom_id(&self) -> Option<u32> {
        self.eom
    }

    pub fn unk_id(&self) -> Option<u32> {
        self.unk
    }

    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }

    /// Whether generation stops at this token (llama.cpp's `llama_vocab_is_eog`).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation ids, sorted.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// The raw vocab string of a token.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.vocab.len()).then(|| self.vocab.text(id))
    }

    /// The id of a vocab string.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.id(text)
    }

    /// A token's attribute (after llama.cpp's fix-ups).
    pub fn token_attr(&self, id: u32) -> Option<TokenAttr> {
        self.attrs.get(id as usize).copied()
    }

    pub fn kind(&self) -> VocabKind {
        self.kind
    }

    /// `tokenizer.ggml.pre` as stored (gpt2 vocabs).
    pub fn pre(&self) -> Option<&str> {
        self.pre.as_deref()
    }

    /// Whether `encode(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }
}

/// A metadata array of strings, checked item by item (with `Metadata::str_array`'s message) but
/// not collected: a vocab's worth of `&str` would be ~800 KB more at the construction peak.
fn str_items<'a>(md: &'a Metadata, key: &str) -> Result<Option<&'a [Value]>> {
    items_of(md, key, "an array of strings", |v| v.as_str().is_some())
}

/// A metadata array of integers, checked as `Metadata::i64_array` does but not collected.
fn int_items<'a>(md: &'a Metadata, key: &str) -> Result<Option<&'a [Value]>> {
    items_of(md, key, "an array of integers", |v| v.as_i64().is_some())
}

fn items_of<'a>(
    md: &'a Metadata,
    key: &str,
    want: &str,
    ok: impl Fn(&Value) -> bool,
) -> Result<Option<&'a [Value]>> {
    let Some(a) = md.array(key)? else {
        return Ok(None);
    };
    match a.iter().find(|v| !ok(v)) {
        Some(v) => Err(Error::Gguf(format!(
            "metadata '{key}' should be {want}, found {}",
            v.type_name()
        ))),
        None => Ok(Some(a)),
    }
}

/// `<0xNN>` → NN.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests;
