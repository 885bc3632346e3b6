//! A model whose tokenizer, `vocab_size`, embedding and LM head disagree on the vocabulary's size
//! is refused at load, naming both numbers (issue #15, row 12: with fewer tokens than embedding
//! rows, text of the missing tokens was dropped and a prompt of it was "empty").
//!
//! Each case starts from a committed conformance model (448 tokens, untied `output`, no
//! `llama.vocab_size`) and breaks one thing.

mod common;

use common::gguf_rewrite::{rewrite, Edits};
use sparsetop_engine::gguf::{GgufFile, Value};
use sparsetop_engine::Model;
use std::path::PathBuf;

const N_TOKENS: u64 = 448;

fn fixture() -> GgufFile {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/llama-spm.gguf");
    GgufFile::open(p).expect("the conformance fixture opens")
}

fn load(edits: &Edits) -> Result<std::sync::Arc<Model>, String> {
    let bytes = rewrite(&fixture(), edits);
    let file = GgufFile::from_bytes(bytes).map_err(|e| format!("not a GGUF: {e}"))?;
    Model::from_gguf(file).map_err(|e| e.to_string())
}

fn refused(edits: &Edits, must_name: &[&str]) {
    let e = load(edits).expect_err("the model must be refused");
    for s in must_name {
        assert!(e.contains(s), "the error should name {s:?}: {e}");
    }
}

/// `n` more tokens at the end of the tokenizer's lists.
fn extra_tokens(n: u64) -> Vec<(String, Value)> {
    let f = fixture();
    let arr = |k: &str| match f.metadata.get(k) {
        Some(Value::Array(v)) => v.clone(),
        other => panic!("{k}: {other:?}"),
    };
    let (mut tokens, mut scores, mut types) = (
        arr("tokenizer.ggml.tokens"),
        arr("tokenizer.ggml.scores"),
        arr("tokenizer.ggml.token_type"),
    );
    for i in 0..n {
        tokens.push(Value::String(format!("[PAD{i}]")));
        scores.push(scores[0].clone());
        types.push(Value::I32(4)); // user-defined, as llama.cpp's converter pads
    }
    vec![
        ("tokenizer.ggml.tokens".into(), Value::Array(tokens)),
        ("tokenizer.ggml.scores".into(), Value::Array(scores)),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
    ]
}

#[test]
fn the_untouched_rewrite_loads() {
    let m = load(&Edits::default()).expect("a faithful rewrite loads");
    assert_eq!(m.config.n_vocab as u64, N_TOKENS);
    assert_eq!(m.tokenizer.n_vocab() as u64, N_TOKENS);
}

#[test]
fn a_padded_embedding_with_a_matching_vocab_size_is_refused() {
    // The case that loaded before: vocab_size and both matrices say 456, the tokenizer 448.
    refused(
        &Edits {
            set: vec![("llama.vocab_size".into(), Value::U32(456))],
            extra_rows: vec![("token_embd.weight".into(), 8), ("output.weight".into(), 8)],
            ..Default::default()
        },
        &["448 tokens", "vocab_size is 456"],
    );
}

#[test]
fn an_embedding_with_more_rows_than_tokens_is_refused() {
    refused(
        &Edits {
            extra_rows: vec![("token_embd.weight".into(), 8)],
            ..Default::default()
        },
        &["448 tokens", "token_embd.weight has 456 rows"],
    );
}

#[test]
fn an_lm_head_with_more_rows_than_tokens_is_refused() {
    refused(
        &Edits {
            extra_rows: vec![("output.weight".into(), 8)],
            ..Default::default()
        },
        &["448 tokens", "output.weight has 456 rows"],
    );
}

#[test]
fn a_tokenizer_with_more_tokens_than_embedding_rows_is_refused() {
    refused(
        &Edits {
            set: extra_tokens(8),
            ..Default::default()
        },
        &["456 tokens", "token_embd.weight has 448 rows"],
    );
    refused(
        &Edits {
            set: [
                extra_tokens(8),
                vec![("llama.vocab_size".into(), Value::U32(448))],
            ]
            .concat(),
            ..Default::default()
        },
        &["456 tokens", "vocab_size is 448"],
    );
}

#[test]
fn padding_the_tokenizer_too_makes_the_model_whole_again() {
    // What llama.cpp's converter does for a padded embedding: [PAD] tokens up to its row count.
    let m = load(&Edits {
        set: [
            extra_tokens(8),
            vec![("llama.vocab_size".into(), Value::U32(456))],
        ]
        .concat(),
        extra_rows: vec![("token_embd.weight".into(), 8), ("output.weight".into(), 8)],
        ..Default::default()
    })
    .expect("agreeing sizes load");
    assert_eq!(m.config.n_vocab, 456);
}
