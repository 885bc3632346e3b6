//! Perplexity on the GPL-3 text against llama-perplexity's figures (`tests/golden/perplexity.json`).

mod common;

use sparsetop_engine::perplexity::perplexity;
use sparsetop_engine::Precision;

fn gpl3_tokens() -> Vec<u32> {
    let text = std::fs::read_to_string(common::project_file("assets/GPL-3.txt")).unwrap();
    let ids = common::model()
        .tokenizer
        .encode(&text, true, false)
        .unwrap();
    let golden = common::golden("perplexity.json");
    assert_eq!(ids, common::ids(&golden["token_ids"]), "GPL-3 tokenization");
    ids
}

fn ppl(n_ctx: usize, p: Precision) -> f64 {
    let r = perplexity(
        &common::model(),
        &gpl3_tokens(),
        n_ctx,
        2,
        p,
        None,
        None,
        |_, _, _| {},
    )
    .unwrap();
    assert_eq!(r.chunks, 7639 / n_ctx);
    eprintln!("{p:?} c={n_ctx}: ppl {:.4}", r.ppl);
    r.ppl
}

#[test]
fn exact_ppl_c128() {
    let v = ppl(128, Precision::Exact);
    assert!((v - 24.231).abs() <= 0.01, "exact c=128 ppl {v}");
}

#[test]
fn exact_ppl_c512() {
    let v = ppl(512, Precision::Exact);
    assert!((v - 18.300).abs() <= 0.01, "exact c=512 ppl {v}");
}

#[test]
fn fast_ppl_c128() {
    let v = ppl(128, Precision::Fast);
    assert!((v / 24.23 - 1.0).abs() <= 0.01, "fast c=128 ppl {v}");
}

#[test]
fn fast_ppl_c512() {
    let v = ppl(512, Precision::Fast);
    assert!((v / 18.35 - 1.0).abs() <= 0.01, "fast c=512 ppl {v}");
}
