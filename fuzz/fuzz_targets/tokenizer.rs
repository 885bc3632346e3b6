//! The tokenizer builder: a GGUF whose `tokenizer.ggml.*` metadata is fuzzed (the seeds are
//! metadata-only GGUFs of real SPM and BPE vocabs), then a few encodes and decodes with what it
//! built.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparsetop_engine::chat::ChatTemplate;
use sparsetop_engine::gguf::GgufFile;
use sparsetop_engine::tokenizer::{StreamDecoder, Tokenizer};

const TEXTS: &[&str] = &["Hello world", " <|im_end|>\n<s> 1234  é\u{2581}😀\t", ""];

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    let Ok(tok) = Tokenizer::from_gguf(&file.metadata) else {
        return;
    };
    let n = tok.n_vocab();
    for text in TEXTS {
        for (add, parse) in [(true, true), (false, false)] {
            let Ok(ids) = tok.encode(text, add, parse) else {
                continue;
            };
            assert!(ids.iter().all(|&id| (id as usize) < n), "id out of range");
            let _ = tok.decode(&ids, true);
            let mut s = StreamDecoder::new();
            for &id in &ids {
                s.push(&tok, id);
            }
            s.flush();
        }
    }
    let all: Vec<u32> = (0..n.min(1 << 12) as u32).collect();
    let _ = tok.decode(&all, true);
    for id in [0, 1, u32::MAX] {
        let _ = (
            tok.token_bytes(id, true),
            tok.token_text(id),
            tok.is_eog(id),
        );
    }
    let _ = ChatTemplate::from_gguf(&file.metadata, &tok);
});
