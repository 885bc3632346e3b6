//! Decoding a token must not allocate: every buffer is sized when the session is created.
//! A counting global allocator watches the per-token path (evaluate one token, sample the next).

mod common;

use sparsetop_engine::offload::bundle;
use sparsetop_engine::sampler::{Sampler, SamplerParams};
use sparsetop_engine::sparse::{ProfileData, SparsityConfig};
use sparsetop_engine::{Model, Precision, Session, SessionOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

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

/// How a case sets its session up: in memory, sparse, under a budget.
#[derive(Clone, Copy, Debug)]
enum Setup {
    Dense,
    Sparse,
    BudgetDense,
    BudgetSparse,
}

fn profile() -> Arc<ProfileData> {
    common::small_profile()
}

fn decode_allocations(precision: Precision, threads: usize, setup: Setup) -> usize {
    let model = match setup {
        Setup::Dense | Setup::Sparse => common::model(),
        Setup::BudgetDense | Setup::BudgetSparse => {
            Model::load_resident(common::model_path()).unwrap().0
        }
    };
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
    let sparse = SparsityConfig {
        level: 0.5,
        predictor: false,
    };
    if matches!(setup, Setup::Sparse | Setup::BudgetSparse) {
        s.set_sparsity(Some(profile()), sparse).unwrap();
    }
    if let Setup::BudgetSparse = setup {
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-alloc");
        std::fs::create_dir_all(&dir).unwrap();
        let p = s.sparse().unwrap().profile.clone();
        let info =
            bundle::write_bundle(&dir.join("m.bundle"), &common::model(), &p, &mut |_, _| {})
                .unwrap();
        s.set_neuron_bundle(Some(info)).unwrap();
    }
    if matches!(setup, Setup::BudgetDense | Setup::BudgetSparse) {
        // Some layers or neurons resident, the rest read every token.
        let min = s.fixed_region().total();
        s.set_mem_budget(Some(min + (12 << 20))).unwrap();
    }
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
    // Warm up: the first decode steps may grow buffers to their final size (under a budget, the
    // I/O engine's recycled job lists reach the most reads in flight).
    for _ in 0..24 {
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
    for (p, t, setup) in [
        (Precision::Fast, 1, Setup::Dense),
        (Precision::Fast, 2, Setup::Dense),
        (Precision::Exact, 2, Setup::Dense),
        (Precision::Fast, 2, Setup::Sparse),
        (Precision::Fast, 2, Setup::BudgetDense),
        (Precision::Fast, 2, Setup::BudgetSparse),
    ] {
        let n = decode_allocations(p, t, setup);
        assert_eq!(
            n, 0,
            "{n} allocations in 32 decode steps ({p:?}, {t} threads, {setup:?})"
        );
    }
}
