//! Decoding a token must not allocate: every buffer is sized when the session is created.
//! A counting global allocator watches the per-token path (evaluate one token, sample the next).

mod common;

use sparsetop_engine::sampler::{Sampler, SamplerParams};
use sparsetop_engine::{Precision, Session, SessionOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn decode_allocations(precision: Precision, threads: usize) -> usize {
    let model = common::model();
    let mut s = Session::new(
        model.clone(),
        &SessionOptions {
            n_ctx: 256,
            n_batch: 32,
            n_threads: threads,
            precision,
        },
    )
    .unwrap();
    let mut sampler = Sampler::new(
        SamplerParams {
            seed: 3,
            ..Default::default()
        },
        model.config.n_vocab,
    );
    let prompt = model
        .tokenizer
        .encode("Once upon a time", true, true)
        .unwrap();
    let mut tok = sampler.sample(s.eval(&prompt, prompt.len() - 1).unwrap());
    // Warm up: the first decode steps may grow buffers to their final size.
    for _ in 0..2 {
        tok = sampler.sample(s.eval(&[tok], 0).unwrap());
        sampler.accept(tok);
    }
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..32 {
        tok = sampler.sample(s.eval(&[tok], 0).unwrap());
        sampler.accept(tok);
    }
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCS.load(Ordering::SeqCst)
}

/// The counter itself works: an allocation while counting is seen.
fn counter_sees_an_allocation() -> bool {
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(100));
    COUNTING.store(false, Ordering::SeqCst);
    drop(v);
    ALLOCS.load(Ordering::SeqCst) > 0
}

#[test]
fn decode_does_not_allocate() {
    assert!(
        counter_sees_an_allocation(),
        "the counting allocator is not counting"
    );
    // One test function: the counter is global, so the cases must not run concurrently.
    for (p, t) in [
        (Precision::Fast, 1),
        (Precision::Fast, 2),
        (Precision::Exact, 2),
    ] {
        let n = decode_allocations(p, t);
        assert_eq!(
            n, 0,
            "{n} allocations in 32 decode steps ({p:?}, {t} threads)"
        );
    }
}
