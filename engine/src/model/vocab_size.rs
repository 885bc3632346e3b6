//! The vocabulary's size must be the same everywhere a model states it: the tokenizer's token
//! list, `<arch>.vocab_size`, the rows of `token_embd` and the rows of `output` (the LM head).
//!
//! With fewer tokens than embedding rows, the rows past the tokenizer's end can be sampled but
//! not printed (text silently vanished and a prompt made only of it was "empty"); with more, a
//! token id indexes past the embedding. llama.cpp refuses both: it creates `token_embd` and
//! `output` with exactly `vocab.n_tokens()` rows and rejects any other shape. Models whose
//! training padded the embedding (Qwen2's 151936 rows) carry matching `[PAD…]` tokens in their
//! GGUF, added by llama.cpp's converter, so requiring agreement refuses no real model.

use crate::error::{Error, Result};
use crate::gguf::GgufFile;

/// Checks that the tokenizer's `n_tokens` agrees with `declared` (`<arch>.vocab_size`, when the
/// file has it) and with the row counts of `token_embd.weight` and `output.weight` (when present).
/// A tensor whose shape is not a matrix is left to the weights' own shape check.
pub fn check(file: &GgufFile, n_tokens: usize, declared: Option<usize>) -> Result<()> {
    let mismatch = |what: String| {
        Error::Model(format!(
            "the tokenizer has {n_tokens} tokens but {what}: the vocabulary and the embedding must agree (one row per token)"
        ))
    };
    if let Some(n) = declared.filter(|&n| n != n_tokens) {
        return Err(mismatch(format!("the model's vocab_size is {n}")));
    }
    for name in ["token_embd.weight", "output.weight"] {
        if let Some(rows) = file.tensor_info(name).and_then(|t| matrix_rows(&t.dims)) {
            if rows != n_tokens as u64 {
                return Err(mismatch(format!("{name} has {rows} rows")));
            }
        }
    }
    Ok(())
}

/// Rows of a GGUF matrix (dims are innermost first: `[cols, rows, 1, 1]`).
fn matrix_rows(dims: &[u64]) -> Option<u64> {
    match dims {
        [_, r] | [_, r, 1] | [_, r, 1, 1] => Some(*r),
        _ => None,
    }
}
