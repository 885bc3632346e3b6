//! The tokenizer and chat template against llama.cpp's outputs on the real SmolLM2 model
//! (`tests/golden/`, produced by llama.cpp; see /tests/golden/README or the project docs).

use serde_json::Value;
use sparsetop_engine::chat::{ChatMessage, ChatTemplate};
use sparsetop_engine::gguf::GgufFile;
use sparsetop_engine::tokenizer::{StreamDecoder, Tokenizer};
use std::sync::OnceLock;

const TOKENIZE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/golden/tokenize.json"
));
const GREEDY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/golden/greedy.json"
));
const PERPLEXITY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/golden/perplexity.json"
));
const GPL3: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/GPL-3.txt"));

struct Model {
    file: GgufFile,
    tok: Tokenizer,
}

/// The default model: fetched (or found in the cache) once; failing to get it fails the test.
fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        let path = sparsetop_engine::fetch::ensure_default_model(&mut |m| eprintln!("{m}"))
            .expect("the default model is required for this test");
        let file = GgufFile::open(&path).expect("open model");
        let tok = Tokenizer::from_gguf(&file.metadata).expect("tokenizer");
        Model { file, tok }
    })
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).expect("golden json")
}

#[test]
fn vocab_facts() {
    let t = &model().tok;
    let g = json(TOKENIZE);
    assert_eq!(t.n_vocab() as u64, g["vocab_size"].as_u64().unwrap());
    assert_eq!(t.bos_id(), Some(1));
    assert_eq!(t.eos_id(), Some(2));
    assert!(!t.add_bos());
    assert_eq!(t.eog_ids(), &[0, 2]);
    assert!(t.is_eog(0) && t.is_eog(2) && !t.is_eog(1) && !t.is_eog(3));
    for s in g["special_tokens"].as_array().unwrap() {
        let id = s["id"].as_u64().unwrap() as u32;
        assert_eq!(t.token_text(id), s["text"].as_str());
        // Control tokens render only on request.
        assert_eq!(
            t.token_bytes(id, true),
            s["text"].as_str().unwrap().as_bytes()
        );
        assert!(t.token_bytes(id, false).is_empty());
    }
    assert_eq!(t.token_text(49152), None);
}

#[test]
fn golden_strings() {
    let t = &model().tok;
    let g = json(TOKENIZE);
    let cases = g["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 27);
    let mut failures = Vec::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let text = c["text"].as_str().unwrap();
        let want = ids(&c["ids"]);
        let want_np = ids(&c["ids_no_parse_special"]);
        let got = t.encode(text, true, true).unwrap();
        let got_np = t.encode(text, true, false).unwrap();
        if got != want {
            failures.push(format!(
                "{name}: parse_special\n  want {want:?}\n  got  {got:?}"
            ));
        }
        if got_np != want_np {
            failures.push(format!(
                "{name}: no parse_special\n  want {want_np:?}\n  got  {got_np:?}"
            ));
        }
        if t.decode(&want, true) != text {
            failures.push(format!("{name}: decode gives {:?}", t.decode(&want, true)));
        }
        if t.decode(&want_np, true) != text {
            failures.push(format!(
                "{name}: decode (no parse) gives {:?}",
                t.decode(&want_np, true)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn golden_prompts_and_chat_template() {
    let m = model();
    let g = json(GREEDY);
    let tmpl = ChatTemplate::from_gguf(&m.file.metadata, &m.tok).unwrap();
    assert_eq!(
        Some(tmpl.source()),
        json(TOKENIZE)["chat_template"].as_str()
    );
    let mut n_chat = 0;
    for c in g["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let want = ids(&c["prompt_ids"]);
        let text = match c["kind"].as_str().unwrap() {
            "chat" => {
                n_chat += 1;
                let user = c["user_message"].as_str().unwrap();
                let r = tmpl
                    .render(&[ChatMessage::new("user", user)], true)
                    .unwrap();
                assert_eq!(
                    r,
                    c["prompt_text"].as_str().unwrap(),
                    "{name}: rendered prompt"
                );
                r
            }
            _ => c["prompt_text"].as_str().unwrap().to_string(),
        };
        assert_eq!(m.tok.encode(&text, true, true).unwrap(), want, "{name}");
    }
    assert_eq!(n_chat, 3);
}

#[test]
fn golden_gpl3_perplexity_tokens() {
    let t = &model().tok;
    let p = json(PERPLEXITY);
    let want: Vec<u32> = match &p["token_ids"] {
        Value::String(s) => serde_json::from_str::<Vec<u32>>(s).unwrap(),
        v => ids(v),
    };
    assert_eq!(want.len(), 7639);
    let got = t.encode(GPL3, true, false).unwrap();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    assert_eq!(t.decode(&got, true), GPL3);
}

#[test]
fn stream_decoder_never_splits_characters() {
    let t = &model().tok;
    let texts = [
        "Hello 👋🌍! 😀👍🏽 family: 👨‍👩‍👧‍👦",
        "你好，世界！日本語のテキスト。한국어",
        "mixed: café — 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and <|im_end|> control",
    ];
    let mut saw_split = false;
    for text in texts {
        let ids = t.encode(text, false, true).unwrap();
        // The point of the test: some tokens are not whole characters.
        saw_split |= ids
            .iter()
            .any(|&i| std::str::from_utf8(t.token_bytes(i, true)).is_err());
        let mut d = StreamDecoder::new();
        let mut out = String::new();
        for &id in &ids {
            let piece = d.push(t, id);
            assert!(
                !piece.contains('\u{FFFD}'),
                "partial character emitted for {text:?}"
            );
            out.push_str(&piece);
        }
        out.push_str(&d.flush());
        assert_eq!(out, t.decode(&ids, true));
        assert_eq!(out, text);
        // Without rendering specials, control tokens vanish in both.
        let mut d = StreamDecoder::new().with_render_special(false);
        let s: String = ids.iter().map(|&i| d.push(t, i)).collect::<String>() + &d.flush();
        assert_eq!(s, t.decode(&ids, false));
    }
    assert!(
        saw_split,
        "no token split a character: the test proves nothing"
    );
    // A dangling partial character is flushed lossily.
    let ids = t.encode("😀", false, true).unwrap();
    assert!(ids.len() > 1);
    let mut d = StreamDecoder::new();
    assert_eq!(d.push(t, ids[0]), "");
    assert_eq!(d.flush(), "\u{FFFD}");
}
