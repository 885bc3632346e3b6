//! The forward pass against llama.cpp's logits and greedy continuations (`tests/golden/`).
//!
//! Exact mode must match the F32 reference within 1e-3 on every top-10 logit and reproduce every
//! greedy continuation; fast mode (quantized activations, f16 KV, like llama.cpp's default path)
//! must agree on the top token wherever llama.cpp's own margin exceeds 0.5, within 1.5 overall.

mod common;

use serde_json::Value;
use sparsetop_engine::sampler::argmax;
use sparsetop_engine::{Precision, Session, SessionOptions};

fn session(p: Precision, n_batch: usize) -> Session {
    Session::new(
        common::model(),
        &SessionOptions {
            n_ctx: 512,
            n_batch,
            n_threads: 2,
            precision: p,
        },
    )
    .expect("session")
}

/// Per position, llama.cpp's top-10 (id, logit).
type TopPerPosition = Vec<Vec<(u32, f32)>>;

/// For each sequence: (name, ids, top-10 per position).
fn sequences(golden: &Value) -> Vec<(String, Vec<u32>, TopPerPosition)> {
    golden["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let tops = s["positions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    p["top"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| (e[0].as_u64().unwrap() as u32, e[1].as_f64().unwrap() as f32))
                        .collect()
                })
                .collect();
            (
                s["name"].as_str().unwrap().to_string(),
                common::ids(&s["ids"]),
                tops,
            )
        })
        .collect()
}

fn row_argmax(row: &[f32]) -> u32 {
    let c: Vec<(u32, f32)> = row
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, l))
        .collect();
    argmax(&c)
}

#[test]
fn exact_mode_matches_f32_reference_logits() {
    let golden = common::golden("logits_f32ref.json");
    let n_vocab = common::model().config.n_vocab;
    // Batch sizes 512 (whole sequence at once) and 7 (several batches) must both hold.
    for n_batch in [512, 7] {
        let mut s = session(Precision::Exact, n_batch);
        let mut worst = 0f32;
        for (name, ids, tops) in sequences(&golden) {
            s.clear();
            let logits = s.eval(&ids, 0).unwrap().to_vec();
            for (pos, top) in tops.iter().enumerate() {
                let row = &logits[pos * n_vocab..(pos + 1) * n_vocab];
                for &(id, want) in top {
                    let d = (row[id as usize] - want).abs();
                    worst = worst.max(d);
                    assert!(
                        d <= 1e-3,
                        "{name} pos {pos} id {id}: got {} want {want} (batch {n_batch})",
                        row[id as usize]
                    );
                }
                assert_eq!(row_argmax(row), top[0].0, "{name} pos {pos}: top-1");
            }
        }
        eprintln!("exact mode, batch {n_batch}: max |Δ| over top-10 = {worst:.2e}");
    }
}

#[test]
fn fast_mode_tracks_llama_cpp_default_logits() {
    let golden = common::golden("logits.json");
    let n_vocab = common::model().config.n_vocab;
    let mut s = session(Precision::Fast, 512);
    let mut worst = 0f32;
    let mut checked_top1 = 0;
    for (name, ids, tops) in sequences(&golden) {
        s.clear();
        let logits = s.eval(&ids, 0).unwrap().to_vec();
        for (pos, top) in tops.iter().enumerate() {
            let row = &logits[pos * n_vocab..(pos + 1) * n_vocab];
            for &(id, want) in top {
                let d = (row[id as usize] - want).abs();
                worst = worst.max(d);
                assert!(
                    d <= 1.5,
                    "{name} pos {pos} id {id}: got {} want {want}",
                    row[id as usize]
                );
            }
            if top[0].1 - top[1].1 > 0.5 {
                checked_top1 += 1;
                assert_eq!(row_argmax(row), top[0].0, "{name} pos {pos}: top-1 differs");
            }
        }
    }
    eprintln!(
        "fast mode: max |Δ| over top-10 = {worst:.3}, top-1 checked at {checked_top1} positions"
    );
    assert!(
        checked_top1 > 50,
        "the margin filter left too few positions to check"
    );
}

/// Greedy continuation of `prompt` for `n` tokens, not stopping at end-of-generation tokens (as the
/// golden files were made).
fn greedy(s: &mut Session, prompt: &[u32], n: usize) -> Vec<u32> {
    s.clear();
    let mut row = s.eval(prompt, prompt.len() - 1).unwrap().to_vec();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = row_argmax(&row);
        out.push(t);
        row.copy_from_slice(s.eval(&[t], 0).unwrap());
    }
    out
}

#[test]
fn exact_mode_reproduces_greedy_continuations() {
    let golden = common::golden("greedy_f32ref.json");
    let mut s = session(Precision::Exact, 64);
    for case in golden["cases"].as_array().unwrap() {
        let prompt = common::ids(&case["prompt_ids"]);
        let want = common::ids(&case["generated_ids"]);
        let got = greedy(&mut s, &prompt, want.len());
        assert_eq!(got, want, "case {}", case["name"]);
    }
}
