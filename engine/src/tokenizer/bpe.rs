//! GPT-2 style byte-level BPE (`tokenizer.ggml.model = gpt2`), run by the `tokenizers` crate.
//!
//! Only plain-text fragments reach this model: special tokens have already been cut out by the
//! caller (`Tokenizer::partition`), exactly as llama.cpp does before its BPE session. The pipeline is
//! `Split(regex, Isolated)` for each regex of the `pre` spec, then `ByteLevel` (bytes to the GPT-2
//! printable alphabet, no prefix space, no regex of its own), then the BPE model with the GGUF merges.

use super::pretokenize::PreSpec;
use crate::error::{Error, Result};
use std::collections::HashMap;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

pub(crate) struct BpeModel {
    tk: tokenizers::Tokenizer,
}

impl BpeModel {
    /// Builds the pipeline. `token_to_id` is the whole vocab; `merges` the raw GGUF merge strings.
    pub(crate) fn new(
        spec: &PreSpec,
        token_to_id: &HashMap<String, u32>,
        merges: &[&str],
    ) -> Result<Self> {
        let mut pairs = Vec::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
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
            // A merge whose halves or result are not tokens can never produce a token; the
            // `tokenizers` model refuses them, so they are dropped.
            if token_to_id.contains_key(a)
                && token_to_id.contains_key(b)
                && token_to_id.contains_key(&format!("{a}{b}"))
            {
                pairs.push((a.to_string(), b.to_string()));
            }
        }
        let vocab: tokenizers::models::bpe::Vocab =
            token_to_id.iter().map(|(k, &v)| (k.clone(), v)).collect();
        let model = BPE::builder()
            .vocab_and_merges(vocab, pairs)
            .ignore_merges(spec.ignore_merges)
            .build()
            .map_err(|e| Error::Tokenizer(format!("building the BPE model: {e}")))?;

        let mut pre: Vec<PreTokenizerWrapper> = Vec::with_capacity(spec.regexes.len() + 1);
        for re in spec.regexes {
            let split = Split::new(
                SplitPattern::Regex(re.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| {
                Error::Tokenizer(format!("pre-tokenizer regex {re:?} ({}): {e}", spec.family))
            })?;
            pre.push(split.into());
        }
        pre.push(ByteLevel::new(false, false, false).into());

        let mut tk = tokenizers::Tokenizer::new(model);
        tk.with_pre_tokenizer(Some(Sequence::new(pre)));
        Ok(BpeModel { tk })
    }

    /// Tokenizes one plain-text fragment, appending ids.
    pub(crate) fn encode(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let enc = self
            .tk
            .encode_fast(text, false)
            .map_err(|e| Error::Tokenizer(format!("BPE encoding failed: {e}")))?;
        out.extend_from_slice(enc.get_ids());
        Ok(())
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

/// Decodes a byte-level token string to the bytes it stands for. Characters outside the GPT-2
/// alphabet (which a well-formed vocab never has in NORMAL tokens) are kept as their UTF-8.
pub(crate) fn byte_level_decode(text: &str, char_to_byte: &HashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_to_byte.get(&c) {
            Some(&b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}
