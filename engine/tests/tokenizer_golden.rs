//! The tokenizer and chat template against llama.cpp's outputs on the real SmolLM2 model
//! (`tests/golden/`, produced by llama.cpp; see /tests/golden/README or the project docs).

use serde_json::Value;
use sparsetop_engine::chat::{ChatMessage, ChatTemplate};
use sparsetop_engine::gguf::{GgufFile, Metadata, Value as MdValue};
use sparsetop_engine::tokenizer::{pre_spec, StreamDecoder, TokenAttr, Tokenizer, KNOWN_PRE};
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
const CALIBRATION: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../assets/calibration.txt"
));

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

/// The `tokenizers` crate pipeline the gpt2 tokenizer used to run (and that
/// `engine/src/tokenizer/bpe.rs` transcribes): `Split(regex, Isolated)` per `pre` regex, `ByteLevel`
/// without prefix space or regex, and its BPE with the GGUF merges whose halves and result are tokens.
fn hf_pipeline(tok: &Tokenizer, md: &Metadata, pre: &str) -> tokenizers::Tokenizer {
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    let spec = pre_spec(Some(pre)).unwrap();
    let vocab: tokenizers::models::bpe::Vocab = (0..tok.n_vocab() as u32)
        .map(|i| (tok.token_text(i).unwrap().to_string(), i))
        .collect();
    let mut pairs = Vec::new();
    for m in md.str_array("tokenizer.ggml.merges").unwrap().unwrap() {
        let pos = m.as_bytes()[1..].iter().position(|&c| c == b' ').unwrap() + 1;
        let (a, b) = (&m[..pos], &m[pos + 1..]);
        if vocab.contains_key(a) && vocab.contains_key(b) && vocab.contains_key(&format!("{a}{b}"))
        {
            pairs.push((a.to_string(), b.to_string()));
        }
    }
    let model = tokenizers::models::bpe::BPE::builder()
        .vocab_and_merges(vocab, pairs)
        .ignore_merges(spec.ignore_merges)
        .build()
        .unwrap();
    let mut pre_tok: Vec<tokenizers::pre_tokenizers::PreTokenizerWrapper> = spec
        .regexes
        .iter()
        .map(|re| {
            Split::new(
                SplitPattern::Regex(re.to_string()),
                tokenizers::SplitDelimiterBehavior::Isolated,
                false,
            )
            .unwrap()
            .into()
        })
        .collect();
    pre_tok.push(ByteLevel::new(false, false, false).into());
    let mut tk = tokenizers::Tokenizer::new(model);
    tk.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::sequence::Sequence::new(
        pre_tok,
    )));
    tk
}

/// Texts that stress the pre-tokenizer regexes and the merges: the golden texts, real prose, and
/// seeded random mixes of scripts, digits, whitespace, contractions, emoji and vocab pieces.
fn parity_corpus(tok: &Tokenizer) -> Vec<String> {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut texts: Vec<String> = json(TOKENIZE)["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    texts.push(GPL3.to_string());
    texts.push(CALIBRATION.to_string());
    texts.extend(CALIBRATION.lines().map(str::to_string));
    let chars: Vec<char> = concat!(
        "aZq Ee0179 \t\n\r\u{0b}\u{0c}\u{a0}\u{2009}\u{3000}\u{85}",
        "'\"-_.,;:!?()[]{}<>|/\\@#$%^&*+=~`",
        "éßЖжαاשह你好の한\u{301}\u{200d}\u{fe0f}😀👍🏽—…«»。、¿٣²½Ⅻ𝔘",
    )
    .chars()
    .collect();
    let units = [
        "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "  ", "\n\n", " \n", "123456",
    ];
    let mut rng = StdRng::seed_from_u64(0x70c);
    for _ in 0..3000 {
        let mut s = String::new();
        for _ in 0..rng.random_range(1..40) {
            match rng.random_range(0..10) {
                0..=4 => s.push(chars[rng.random_range(0..chars.len())]),
                5..=8 => {
                    let id = rng.random_range(0..tok.n_vocab() as u32);
                    s.push_str(&String::from_utf8_lossy(tok.token_bytes(id, false)));
                }
                _ => s.push_str(units[rng.random_range(0..units.len())]),
            }
        }
        texts.push(s);
    }
    for _ in 0..300 {
        let bytes: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
        texts.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    texts
}

#[test]
fn bpe_matches_the_tokenizers_crate_for_every_pre_family() {
    let m = model();
    let md = &m.file.metadata;
    let corpus = parity_corpus(&m.tok);
    let mut families = Vec::new();
    for pre in KNOWN_PRE {
        let family = pre_spec(Some(pre)).unwrap().family;
        if families.contains(&family) {
            continue;
        }
        families.push(family);
        // The model's vocab and merges under another `pre`.
        let entries = md
            .entries()
            .iter()
            .map(|(k, v)| {
                let v = match k.as_str() {
                    "tokenizer.ggml.pre" => MdValue::String(pre.to_string()),
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect();
        let md = Metadata::from_entries(entries).unwrap();
        let ours = Tokenizer::from_gguf(&md).unwrap();
        let hf = hf_pipeline(&ours, &md, pre);
        // Our encode cuts USER_DEFINED tokens out even without parse_special; the pipeline does not.
        let user_defined: Vec<&str> = (0..ours.n_vocab() as u32)
            .filter(|&i| ours.token_attr(i) == Some(TokenAttr::UserDefined))
            .map(|i| ours.token_text(i).unwrap())
            .collect();
        let mut compared = 0;
        for text in &corpus {
            if user_defined.iter().any(|u| text.contains(u)) {
                continue;
            }
            let want = hf.encode_fast(text.as_str(), false).unwrap();
            let got = ours.encode(text, false, false).unwrap();
            assert_eq!(got, want.get_ids(), "pre {pre}: {text:?}");
            compared += 1;
        }
        assert!(compared > 3000, "pre {pre}: only {compared} texts compared");
    }
}
