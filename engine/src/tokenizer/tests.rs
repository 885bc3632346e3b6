//! Offline tests on tiny vocabs built in code.

use super::*;
use crate::gguf::Value;

fn strs(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect())
}

fn md(entries: Vec<(&str, Value)>) -> Metadata {
    Metadata::from_entries(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
    .unwrap()
}

fn with(
    mut base: Vec<(&'static str, Value)>,
    key: &'static str,
    v: Value,
) -> Vec<(&'static str, Value)> {
    base.retain(|(k, _)| *k != key);
    base.push((key, v));
    base
}

/// A tiny SPM vocab: <unk> <s> </s>, 256 byte tokens, then pieces with scores, and one
/// USER_DEFINED token.
fn spm_entries() -> Vec<(&'static str, Value)> {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2i32, 3, 3];
    let mut scores = vec![0f32, 0., 0.];
    for b in 0..256 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.);
    }
    let pieces: &[(&str, f32)] = &[
        ("▁", -1.0),
        ("a", -2.0),
        ("b", -2.0),
        ("c", -2.0),
        ("h", -2.0),
        ("e", -2.0),
        ("l", -2.0),
        ("o", -2.0),
        ("ab", -5.0),
        ("bc", -4.0), // beats "ab": "abc" → a + bc
        ("he", -3.0),
        ("ll", -3.0),
        ("llo", -3.5),
        ("hello", -3.0),
        ("▁hello", -1.5),
        ("▁a", -4.5),
        ("<tool>", 0.0),
    ];
    for (p, s) in pieces {
        tokens.push(p.to_string());
        types.push(if *p == "<tool>" { 4 } else { 1 });
        scores.push(*s);
    }
    let toks: Vec<&str> = tokens.iter().map(String::as_str).collect();
    vec![
        ("tokenizer.ggml.model", Value::String("llama".into())),
        ("tokenizer.ggml.tokens", strs(&toks)),
        (
            "tokenizer.ggml.scores",
            Value::Array(scores.into_iter().map(Value::F32).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
    ]
}

/// A tiny byte-level BPE vocab: the 256 byte characters, a few merges, `<|endoftext|>` (CONTROL)
/// and `<tool>` (USER_DEFINED).
fn bpe_entries() -> Vec<(&'static str, Value)> {
    let table = bpe::bytes_to_unicode();
    let mut tokens: Vec<String> = vec!["<|endoftext|>".into()];
    let mut types = vec![3i32];
    for c in table {
        tokens.push(c.to_string());
        types.push(1);
    }
    for t in ["he", "ll", "hell", "hello", "Ġw", "Ġwo", "<tool>"] {
        tokens.push(t.into());
        types.push(if t == "<tool>" { 4 } else { 1 });
    }
    let toks: Vec<&str> = tokens.iter().map(String::as_str).collect();
    vec![
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("gpt-2".into())),
        ("tokenizer.ggml.tokens", strs(&toks)),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        (
            "tokenizer.ggml.merges",
            strs(&["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"]),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(0)),
        ("tokenizer.ggml.eos_token_id", Value::U32(0)),
    ]
}

fn ids_of(t: &Tokenizer, pieces: &[&str]) -> Vec<u32> {
    pieces
        .iter()
        .map(|p| t.token_id(p).unwrap_or_else(|| panic!("{p}")))
        .collect()
}

#[test]
fn spm_merges_by_score_with_space_prefix_and_bos() {
    let t = Tokenizer::from_gguf(&md(spm_entries())).unwrap();
    assert_eq!(t.kind(), VocabKind::Spm);
    assert!(t.add_bos() && t.add_space_prefix());
    assert_eq!(
        t.encode("hello", true, true).unwrap(),
        [vec![1], ids_of(&t, &["▁hello"])].concat()
    );
    assert_eq!(
        t.encode("hello", false, true).unwrap(),
        ids_of(&t, &["▁hello"])
    );
    // Highest merged score first: "bc" (-4) is taken before "ab" (-5) can be, then "▁a" (-4.5).
    assert_eq!(
        t.encode("abc", false, true).unwrap(),
        ids_of(&t, &["▁a", "bc"])
    );
    // Without "▁a" and "bc" in reach, "ab" merges.
    assert_eq!(
        t.encode("xab", false, true).unwrap()[2..],
        ids_of(&t, &["ab"])
    );
    // Decoding drops the space the encoder added.
    assert_eq!(
        t.decode(&t.encode("hello abc", true, true).unwrap(), false),
        "hello abc"
    );
    assert_eq!(
        t.decode(&t.encode("hello abc", true, true).unwrap(), true),
        "<s>hello abc"
    );
}

#[test]
fn spm_byte_fallback() {
    let t = Tokenizer::from_gguf(&md(spm_entries())).unwrap();
    let ids = t.encode("é", false, true).unwrap();
    assert_eq!(ids, ids_of(&t, &["▁", "<0xC3>", "<0xA9>"]));
    assert_eq!(t.token_bytes(ids[1], false), &[0xC3]);
    assert_eq!(t.decode(&ids, false), "é");
    // Streaming never shows half of "é".
    let mut d = StreamDecoder::new();
    let out: Vec<String> = ids.iter().map(|&i| d.push(&t, i)).collect();
    assert_eq!(out, [" ", "", "é"]);
}

#[test]
fn spm_parse_special_on_off() {
    let t = Tokenizer::from_gguf(&md(spm_entries())).unwrap();
    let on = t.encode("hello</s>hello", false, true).unwrap();
    // After a special token, a space is prefixed again.
    assert_eq!(on, ids_of(&t, &["▁hello", "</s>", "▁hello"]));
    let off = t.encode("hello</s>", false, false).unwrap();
    assert!(!off.contains(&2), "{off:?}");
    assert_eq!(t.decode(&off, true), "hello</s>");
    // USER_DEFINED tokens are recognised either way (no text fragment, so no space prefix).
    for ps in [true, false] {
        assert_eq!(
            t.encode("<tool>", false, ps).unwrap(),
            ids_of(&t, &["<tool>"])
        );
        assert_eq!(
            t.encode("a<tool>", false, ps).unwrap(),
            ids_of(&t, &["▁a", "<tool>"])
        );
    }
    assert!(t.is_eog(2) && !t.is_eog(1));
}

#[test]
fn bpe_basics_and_parse_special() {
    let t = Tokenizer::from_gguf(&md(bpe_entries())).unwrap();
    assert_eq!(t.kind(), VocabKind::Bpe);
    assert!(!t.add_bos());
    assert_eq!(
        t.encode("hello wo", true, true).unwrap(),
        ids_of(&t, &["hello", "Ġwo"])
    );
    assert_eq!(
        t.encode("hello<|endoftext|>", false, true).unwrap(),
        ids_of(&t, &["hello", "<|endoftext|>"])
    );
    let off = t.encode("hello<|endoftext|>", false, false).unwrap();
    assert_eq!(off.len(), 1 + "<|endoftext|>".len());
    assert_eq!(t.decode(&off, false), "hello<|endoftext|>");
    assert_eq!(
        t.decode(&ids_of(&t, &["hello", "<|endoftext|>"]), false),
        "hello"
    );
    assert_eq!(
        t.decode(&ids_of(&t, &["hello", "<|endoftext|>"]), true),
        "hello<|endoftext|>"
    );
    assert_eq!(
        t.encode("<tool>", false, false).unwrap(),
        ids_of(&t, &["<tool>"])
    );
    // Bytes of a multi-byte character come out as byte tokens and decode back.
    let ids = t.encode("é", false, true).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(t.decode(&ids, true), "é");
    assert!(t.is_eog(0));
    assert_eq!(t.eog_ids(), &[0]);
}

#[test]
fn bpe_pre_handling() {
    let e = Tokenizer::from_gguf(&md(with(
        bpe_entries(),
        "tokenizer.ggml.pre",
        Value::String("klingon".into()),
    )))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("klingon") && e.contains("smollm") && e.contains("qwen2"),
        "{e}"
    );
    // Missing pre → llama.cpp's default.
    let mut ent = bpe_entries();
    ent.retain(|(k, _)| *k != "tokenizer.ggml.pre");
    let t = Tokenizer::from_gguf(&md(ent)).unwrap();
    assert_eq!(t.pre(), None);
    assert_eq!(
        t.encode("hello wo", false, true).unwrap(),
        ids_of(&t, &["hello", "Ġwo"])
    );
    // llama-bpe adds BOS by default.
    let t = Tokenizer::from_gguf(&md(with(
        bpe_entries(),
        "tokenizer.ggml.pre",
        Value::String("llama-bpe".into()),
    )))
    .unwrap();
    assert!(t.add_bos());
    assert_eq!(
        t.encode("hello", true, true).unwrap(),
        ids_of(&t, &["<|endoftext|>", "hello"])
    );
    // ... unless the file says otherwise.
    let t = Tokenizer::from_gguf(&md(with(
        with(
            bpe_entries(),
            "tokenizer.ggml.pre",
            Value::String("llama-bpe".into()),
        ),
        "tokenizer.ggml.add_bos_token",
        Value::Bool(false),
    )))
    .unwrap();
    assert!(!t.add_bos());
}

#[test]
fn out_of_range_special_ids_are_errors() {
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.eot_token_id",
    ] {
        for base in [spm_entries(), bpe_entries()] {
            let e = Tokenizer::from_gguf(&md(with(base, key, Value::U32(100_000))))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains("100000"), "{e}");
        }
    }
}

#[test]
fn mismatched_arrays_are_errors() {
    let short = Value::Array(vec![Value::F32(0.0); 3]);
    let e = Tokenizer::from_gguf(&md(with(spm_entries(), "tokenizer.ggml.scores", short)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.ggml.scores"), "{e}");
    let short = Value::Array(vec![Value::I32(1); 3]);
    let e = Tokenizer::from_gguf(&md(with(bpe_entries(), "tokenizer.ggml.token_type", short)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.ggml.token_type"), "{e}");
    let e = Tokenizer::from_gguf(&md(with(
        bpe_entries(),
        "tokenizer.ggml.merges",
        strs(&["nospace"]),
    )))
    .unwrap_err()
    .to_string();
    assert!(e.contains("merges"), "{e}");
    let e = Tokenizer::from_gguf(&md(with(
        spm_entries(),
        "tokenizer.ggml.model",
        Value::String("t5".into()),
    )))
    .unwrap_err()
    .to_string();
    assert!(e.contains("'t5'"), "{e}");
}

#[test]
fn eog_heuristics() {
    // `<|im_end|>` typed NORMAL is still an end of generation, and becomes CONTROL.
    let mut ent = bpe_entries();
    if let Some((_, Value::Array(t))) = ent.iter_mut().find(|(k, _)| *k == "tokenizer.ggml.tokens")
    {
        t.push(Value::String("<|im_end|>".into()));
    }
    if let Some((_, Value::Array(t))) = ent
        .iter_mut()
        .find(|(k, _)| *k == "tokenizer.ggml.token_type")
    {
        t.push(Value::I32(1));
    }
    let t = Tokenizer::from_gguf(&md(ent)).unwrap();
    let im_end = t.token_id("<|im_end|>").unwrap();
    assert!(t.is_eog(im_end) && t.is_eog(0));
    assert_eq!(t.token_attr(im_end), Some(TokenAttr::Control));
    assert_eq!(t.eot_id(), Some(im_end));
}

#[test]
fn shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    assert_send_sync::<StreamDecoder>();
    assert_send_sync::<crate::chat::ChatTemplate>();
}
