//! Tokenizing fuzzed text with two fixed small tokenizers built from the seed vocabs: SPM with byte
//! fallback (`llama-spm`) and byte-level BPE (`qwen2-bpe`). Checks that ids are in range, that a
//! stream decode equals a whole decode, and that the BPE vocab (every byte has a token) decodes
//! back to the text exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparsetop_engine::gguf::GgufFile;
use sparsetop_engine::tokenizer::{StreamDecoder, Tokenizer};
use std::sync::OnceLock;

fn load(bytes: &[u8]) -> Tokenizer {
    let f = GgufFile::from_bytes(bytes.to_vec()).expect("seed vocab parses");
    Tokenizer::from_gguf(&f.metadata).expect("seed vocab builds")
}

fn tokenizers() -> &'static [Tokenizer; 2] {
    static T: OnceLock<[Tokenizer; 2]> = OnceLock::new();
    T.get_or_init(|| {
        [
            load(include_bytes!("../corpus/tokenizer/llama-spm-vocab.gguf")),
            load(include_bytes!("../corpus/tokenizer/qwen2-bpe-vocab.gguf")),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let bpe = flags & 1 == 1;
    let tok = &tokenizers()[bpe as usize];
    let (add, parse) = (flags & 2 != 0, flags & 4 != 0);
    let ids = match tok.encode(text, add, parse) {
        Ok(ids) => ids,
        // Both vocabs have a token for every byte: encoding cannot fail.
        Err(e) => panic!("encode failed: {e}"),
    };
    assert!(ids.iter().all(|&id| (id as usize) < tok.n_vocab()));
    let whole = tok.decode(&ids, true);
    let mut s = StreamDecoder::new();
    let mut streamed = String::new();
    for &id in &ids {
        streamed.push_str(&s.push(tok, id));
    }
    streamed.push_str(&s.flush());
    if bpe {
        assert_eq!(streamed, whole, "stream decode differs from decode");
        if !add {
            assert_eq!(whole, text, "BPE decode(encode(text)) is not the text");
        }
    }
});
