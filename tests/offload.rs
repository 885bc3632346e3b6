//! Running under a memory budget: the results must equal the in-memory results exactly, whatever
//! the budget, and bad budgets must be refused clearly.

mod common;

use sparsetop_engine::offload::bundle;
use sparsetop_engine::sparse::{ProfileData, SparsityConfig};
use sparsetop_engine::{Model, Session, SessionOptions};
use std::sync::Arc;

fn session(model: &Arc<Model>) -> Session {
    Session::new(
        model.clone(),
        &SessionOptions {
            n_ctx: 256,
            n_batch: 32,
            n_threads: 2,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Prompt logits (last row) and then the logits of a few forced decode tokens.
fn run(s: &mut Session) -> Vec<Vec<f32>> {
    let prompt: Vec<u32> = (0..70).map(|i| (i * 977 + 13) % 49152).collect();
    let mut out = vec![s.eval(&prompt, prompt.len() - 1).unwrap().to_vec()];
    for t in [28, 1000, 5, 49151, 300, 42] {
        out.push(s.eval(&[t], 0).unwrap().to_vec());
    }
    out
}

#[test]
fn any_budget_gives_the_in_memory_logits() {
    let reference = run(&mut session(&common::model()));
    let (resident, kept) = Model::load_resident(common::model_path()).unwrap();
    assert!(!resident.ffn_in_memory());
    assert!(
        kept < resident.file.file_size() * 3 / 5,
        "kept {kept} bytes"
    );
    let mut s = session(&resident);
    let min = s.fixed_region().total();
    // The least budget (every FFN layer streamed), some layers resident, and all of them.
    for extra in [0u64, 12 << 20, 200 << 20] {
        s.set_mem_budget(Some(min + extra)).unwrap();
        s.clear();
        let got = run(&mut s);
        let o = s.offload().unwrap();
        eprintln!(
            "budget +{} MiB: {} layers resident, {:?}",
            extra >> 20,
            o.stream.resident_layers(),
            o.stream.stats
        );
        for (a, b) in reference.iter().zip(&got) {
            let d = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(d <= 1e-5, "budget +{extra}: logits differ by {d}");
        }
    }
    let o = s.offload().unwrap();
    assert_eq!(o.stream.resident_layers(), 30);
}

#[test]
fn a_budget_below_the_fixed_region_is_refused_with_the_minimum() {
    let (resident, _) = Model::load_resident(common::model_path()).unwrap();
    let mut s = session(&resident);
    let min = s.fixed_region().total();
    let e = s.set_mem_budget(Some(min - 1)).unwrap_err().to_string();
    assert!(e.contains("--mem-budget"), "{e}");
    assert!(e.contains("KV cache"), "{e}");
    // Without a budget, a model whose FFN is not in memory cannot run.
    let e = s.eval(&[1, 2, 3], 2).unwrap_err().to_string();
    assert!(e.contains("memory budget"), "{e}");
    // A model in memory may drop its budget again.
    let mut s = session(&common::model());
    s.set_mem_budget(Some(min + (8 << 20))).unwrap();
    s.set_mem_budget(None).unwrap();
    assert!(s.offload().is_none());
}

fn profile() -> Arc<ProfileData> {
    common::small_profile()
}

#[test]
fn sparse_decode_under_any_budget_gives_the_in_memory_logits() {
    let profile = profile();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("offload-sparse");
    std::fs::create_dir_all(&dir).unwrap();
    let bpath = dir.join("smollm2.bundle");
    for predictor in [false, true] {
        let config = SparsityConfig {
            level: 0.5,
            predictor,
        };
        let mut mem = session(&common::model());
        mem.set_sparsity(Some(profile.clone()), config).unwrap();
        let reference = run(&mut mem);
        let info =
            bundle::write_bundle(&bpath, &common::model(), &profile, &mut |_, _| {}).unwrap();
        let (resident, _) = Model::load_resident(common::model_path()).unwrap();
        let mut s = session(&resident);
        s.set_sparsity(Some(profile.clone()), config).unwrap();
        s.set_neuron_bundle(Some(info)).unwrap();
        let min = s.fixed_region().total();
        // The least budget taken in whole MiB (the cold region's one layer, little room for
        // read-ahead, no hot region), fixed region + cold slots and a little, a partial hot
        // region, everything hot.
        let least = (0u64..16)
            .map(|m| m << 20)
            .find(|&extra| s.set_mem_budget(Some(min + extra)).is_ok())
            .expect("a budget a few MiB over the fixed region is taken");
        for extra in [least, 5u64 << 20, 20 << 20, 80 << 20] {
            s.set_mem_budget(Some(min + extra)).unwrap();
            s.clear();
            let got = run(&mut s);
            let n = s.offload().unwrap().neurons.as_ref().unwrap();
            eprintln!(
                "predictor {predictor}, budget +{} MiB: {} hot per layer, {:?}",
                extra >> 20,
                n.hot_per_layer(),
                n.stats
            );
            assert!(n.stats.misses + n.stats.cold_hits + n.stats.hot_hits > 0);
            for (a, b) in reference.iter().zip(&got) {
                let d = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                assert!(
                    d <= 1e-5,
                    "predictor {predictor}, budget +{extra}: logits differ by {d}"
                );
            }
        }
    }
}

#[test]
fn a_bundle_cut_short_while_in_use_stops_generation_with_a_clear_error() {
    let profile = profile();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("offload-fault");
    std::fs::create_dir_all(&dir).unwrap();
    let bpath = dir.join("smollm2.bundle");
    let info = bundle::write_bundle(&bpath, &common::model(), &profile, &mut |_, _| {}).unwrap();
    let (resident, _) = Model::load_resident(common::model_path()).unwrap();
    let mut s = session(&resident);
    let config = SparsityConfig {
        level: 0.5,
        predictor: false,
    };
    s.set_sparsity(Some(profile.clone()), config).unwrap();
    s.set_neuron_bundle(Some(info)).unwrap();
    let min = s.fixed_region().total();
    s.set_mem_budget(Some(min + (6 << 20))).unwrap();
    s.eval(&[1, 2, 3, 4], 3).unwrap();
    s.eval(&[5], 0).unwrap();
    let before = s.tokens().to_vec();
    // Cut the file in the middle of the data: later layers' records are gone.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&bpath)
        .unwrap();
    f.set_len(std::fs::metadata(&bpath).unwrap().len() / 2)
        .unwrap();
    let e = s.eval(&[6], 0).unwrap_err().to_string();
    assert!(e.contains("smollm2.bundle"), "{e}");
    assert!(
        e.contains("short") || e.contains("end of") || e.contains("past"),
        "{e}"
    );
    // Nothing of the failed step stays: the conversation so far is intact.
    assert_eq!(s.tokens(), &before[..]);
}
