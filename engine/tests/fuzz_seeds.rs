//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/TARGET/`) from the test builders and
//! the conformance models. Not a test: run it when a format changes, and commit what it writes:
//!
//!     cargo test -p sparsetop-engine --test fuzz_seeds -- --ignored
//!
//! Everything is small (well under 1 MiB in all) and deterministic.

mod common;

use common::gguf_builder::GgufBuilder;
use common::rng::Rng;
use sparsetop_engine::gguf::{GgufFile, Value};
use sparsetop_engine::offload::bundle;
use sparsetop_engine::sparse::calibrate::{calibrate, CalibrateOptions};
use sparsetop_engine::{GgmlType, Model};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus(target: &str) -> PathBuf {
    let d = root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A GGUF with the metadata entries of `src` that `keep` accepts, and no tensors.
fn metadata_only(src: &GgufFile, keep: impl Fn(&str) -> bool) -> Vec<u8> {
    let mut b = GgufBuilder::new();
    for (k, v) in src.metadata.entries() {
        if keep(k) {
            b = b.kv(k, v.clone());
        }
    }
    b.build()
}

fn conformance(name: &str) -> GgufFile {
    GgufFile::open(root().join("tests/conformance").join(name)).unwrap()
}

fn f32_bytes(rng: &mut Rng, n: usize, scale: f32) -> Vec<u8> {
    (0..n)
        .flat_map(|_| ((rng.unit() - 0.5) * scale).to_le_bytes())
        .collect()
}

fn f16_bytes(rng: &mut Rng, n: usize, scale: f32) -> Vec<u8> {
    (0..n)
        .flat_map(|_| half::f16::from_f32((rng.unit() - 0.5) * scale).to_le_bytes())
        .collect()
}

/// A runnable llama model of one layer, width 32, FFN 64, with `llama-linear`'s SPM vocab and chat
/// template: small enough for a seed (~60 KB), bundlable (widths are multiples of 32).
fn tiny_model() -> Vec<u8> {
    let src = conformance("llama-linear.gguf");
    let (e, ff, n_vocab) = (32u64, 64u64, 448u64);
    let mut b = GgufBuilder::new();
    for (k, v) in src.metadata.entries() {
        let v = match k.as_str() {
            "llama.embedding_length" => Value::U32(e as u32),
            "llama.feed_forward_length" => Value::U32(ff as u32),
            "llama.attention.head_count" | "llama.attention.head_count_kv" => Value::U32(2),
            "llama.rope.dimension_count" => Value::U32(16),
            "llama.context_length" => Value::U32(256),
            "general.name" => Value::String("fuzz-seed-tiny".into()),
            _ => v.clone(),
        };
        b = b.kv(k, v);
    }
    let mut rng = Rng::new(15);
    let ones = |n: u64| -> Vec<u8> { (0..n).flat_map(|_| 1f32.to_le_bytes()).collect() };
    b = b
        .tensor(
            "token_embd.weight",
            &[e, n_vocab],
            GgmlType::F16,
            f16_bytes(&mut rng, (e * n_vocab) as usize, 1.0),
        )
        .tensor("output_norm.weight", &[e], GgmlType::F32, ones(e))
        .tensor("blk.0.attn_norm.weight", &[e], GgmlType::F32, ones(e))
        .tensor("blk.0.ffn_norm.weight", &[e], GgmlType::F32, ones(e));
    for m in ["attn_q", "attn_k", "attn_v", "attn_output"] {
        let data = f32_bytes(&mut rng, (e * e) as usize, 0.5);
        b = b.tensor(&format!("blk.0.{m}.weight"), &[e, e], GgmlType::F32, data);
    }
    for m in ["ffn_gate", "ffn_up"] {
        let data = f16_bytes(&mut rng, (e * ff) as usize, 0.5);
        b = b.tensor(&format!("blk.0.{m}.weight"), &[e, ff], GgmlType::F16, data);
    }
    let down = f32_bytes(&mut rng, (e * ff) as usize, 0.5);
    b.tensor("blk.0.ffn_down.weight", &[ff, e], GgmlType::F32, down)
        .build()
}

#[test]
#[ignore = "writes the fuzz seed corpora; run by hand when a format changes"]
fn write_fuzz_seeds() {
    // GGUF: the tiny model, and a metadata-only file.
    let tiny = tiny_model();
    std::fs::write(corpus("gguf").join("tiny-llama.gguf"), &tiny).unwrap();
    let spm = conformance("llama-spm.gguf");
    let bpe = conformance("qwen2-bpe.gguf");
    // Tokenizer: the two vocabs (SPM with byte fallback, byte-level BPE with merges), with the
    // keys the builder reads. The `tokenize` target builds its fixed tokenizers from these.
    let tok_keys = |k: &str| k.starts_with("tokenizer.") && k != "tokenizer.chat_template";
    std::fs::write(
        corpus("tokenizer").join("llama-spm-vocab.gguf"),
        metadata_only(&spm, tok_keys),
    )
    .unwrap();
    std::fs::write(
        corpus("tokenizer").join("qwen2-bpe-vocab.gguf"),
        metadata_only(&bpe, tok_keys),
    )
    .unwrap();
    std::fs::write(
        corpus("gguf").join("qwen2-metadata.gguf"),
        metadata_only(&bpe, |_| true),
    )
    .unwrap();
    // Tokenize: a flags byte (bit 0: BPE, bit 1: add BOS/EOS, bit 2: parse special), then text.
    for (i, (flags, text)) in [
        (0u8, "Hello world! The quick brown fox."),
        (1, "Hello world! The quick brown fox."),
        (
            7,
            "<|im_start|>user\nHi <tool_call> 2024 ünïcödé 😀<|im_end|>",
        ),
        (2, "  leading spaces\tand\ttabs\r\n"),
        (5, "<s>[INST] x [/INST]</s> 12345678"),
    ]
    .iter()
    .enumerate()
    {
        let mut b = vec![*flags];
        b.extend_from_slice(text.as_bytes());
        std::fs::write(corpus("tokenize").join(format!("text-{i}")), b).unwrap();
    }

    // Profile and bundle of the tiny model.
    let model = Model::from_gguf(GgufFile::from_bytes(tiny).unwrap()).unwrap();
    let tokens: Vec<u32> = (0..96u32).map(|i| 3 + (i * 37) % 400).collect();
    let opts = CalibrateOptions {
        max_tokens: 96,
        n_ctx: 32,
        rank: 4,
        n_threads: 1,
    };
    let (profile, _) = calibrate(&model, &tokens, &opts, &mut |_, _, _| {}).unwrap();
    let pbytes = profile.to_bytes().unwrap();
    // The profile target's input is a mode byte (0: the harness repairs the checksum), then the file.
    let mut p = vec![0u8];
    p.extend_from_slice(&pbytes);
    std::fs::write(corpus("profile").join("tiny-rank4"), p).unwrap();
    let mut no_pred = profile.clone();
    no_pred.dims.rank = 0;
    no_pred.pred_a = Vec::<u16>::new().into();
    no_pred.pred_b = Vec::<u16>::new().into();
    let mut p = vec![0u8];
    p.extend_from_slice(&no_pred.to_bytes().unwrap());
    std::fs::write(corpus("profile").join("tiny-no-predictor"), p).unwrap();

    let dir = std::env::temp_dir().join(format!("sparsetop-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.gguf.bundle");
    bundle::write_bundle(&path, &model, &profile, &mut |_, _| {}).unwrap();
    // The bundle target's input is a mode byte (0: the harness repairs size and checksums).
    let mut b = vec![0u8];
    b.extend_from_slice(&std::fs::read(&path).unwrap());
    std::fs::write(corpus("bundle").join("tiny"), b).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
