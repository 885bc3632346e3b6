//! Damaged data is never used: a neuron bundle whose records were damaged fails the step that
//! reads them (naming the file, the layer and the cluster) and leaves the session as it was; a
//! damaged profile is refused naming its file; a model whose activations turn NaN stops with an
//! error naming the first layer where they did, in prefill and in decode, dense and sparse, in
//! memory and under a budget.
//!
//! Runs on the tiny conformance models in `tests/conformance/`, with copies whose bytes are
//! changed in one place.

use sparsetop_engine::gguf::GgufFile;
use sparsetop_engine::offload::bundle;
use sparsetop_engine::sparse::calibrate::{calibrate, CalibrateOptions};
use sparsetop_engine::sparse::{ProfileData, SparsityConfig};
use sparsetop_engine::{Model, Session, SessionOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/conformance")
        .join(format!("{name}.gguf"))
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("integrity")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A copy of fixture `name` at `to` whose matrix `tensor` has a NaN as the scale of its first
/// block (its first row's output is then NaN whatever the input). A NaN in an activation that a
/// matmul quantizes is lost on the way (quantizing maps it to 0), so the damage that reaches the
/// logits is in the matrices whose output is added to the residual stream, as here.
fn nan_copy(name: &str, tensor: &str, to: &Path) {
    use sparsetop_engine::GgmlType as T;
    let src = GgufFile::open(fixture_path(name)).unwrap();
    let t = src
        .tensor_info(tensor)
        .unwrap_or_else(|| panic!("{name} has no {tensor}"));
    // Offset of the f16 block scale `d` in a block.
    let d_at = match t.dtype {
        T::Q4_0 | T::Q4_1 | T::Q5_0 | T::Q5_1 | T::Q8_0 | T::Q4_K | T::Q5_K => 0,
        T::Q6_K => 208,
        other => panic!("{tensor} is {other}: no scale to damage"),
    };
    let mut bytes = src.bytes().to_vec();
    let f16_nan = 0x7e00u16.to_le_bytes();
    bytes[t.offset + d_at..t.offset + d_at + 2].copy_from_slice(&f16_nan);
    std::fs::write(to, bytes).unwrap();
}

fn session(model: &Arc<Model>) -> Session {
    Session::new(
        model.clone(),
        &SessionOptions {
            n_ctx: 64,
            n_batch: 16,
            n_threads: 2,
            ..Default::default()
        },
    )
    .unwrap()
}

/// A calibrated profile of `model` (small: its order is what the bundle uses).
fn profile(model: &Arc<Model>) -> Arc<ProfileData> {
    let tokens: Vec<u32> = (0..200).map(|i| (i * 37 + 5) % 200 + 3).collect();
    let opts = CalibrateOptions {
        max_tokens: 200,
        n_ctx: 64,
        rank: 4,
        n_threads: 2,
    };
    Arc::new(
        calibrate(model, &tokens, &opts, &mut |_, _, _| {})
            .unwrap()
            .0,
    )
}

const HALF: SparsityConfig = SparsityConfig {
    level: 0.5,
    predictor: false,
};

#[test]
fn nan_weights_stop_prefill_and_decode_naming_the_first_layer() {
    let dir = scratch("nan_dense");
    // llama-spm has two layers: the NaN is in layer 1, so layer 0 must not be blamed.
    for (tensor, stage) in [
        ("blk.1.attn_output.weight", "layer 1 (attention)"),
        ("blk.1.ffn_down.weight", "layer 1 (FFN)"),
        ("output.weight", "the output layer"),
    ] {
        let path = dir.join(format!("{tensor}.gguf"));
        nan_copy("llama-spm", tensor, &path);
        let model = Model::load(&path).unwrap();
        let mut s = session(&model);
        // Prefill: a batch of several tokens.
        let e = s.eval(&[1, 5, 9, 12], 3).unwrap_err().to_string();
        assert!(
            e.contains("non-finite") && e.contains(stage),
            "{tensor}: {e}"
        );
        if !stage.contains("output") {
            assert!(e.contains("position 0"), "{tensor}: {e}");
        }
        assert!(s.tokens().is_empty(), "nothing of the failed batch stays");
        // Decode: one token at a time.
        let e = s.eval(&[7], 0).unwrap_err().to_string();
        assert!(
            e.contains("non-finite") && e.contains(stage),
            "{tensor}: {e}"
        );
        assert!(s.tokens().is_empty());
    }
    // The same model without the NaN runs, and gives finite logits.
    let model = Model::load(fixture_path("llama-spm")).unwrap();
    let mut s = session(&model);
    assert!(s
        .eval(&[1, 5, 9, 12], 3)
        .unwrap()
        .iter()
        .all(|x| x.is_finite()));
}

#[test]
fn nan_weights_stop_sparse_decode_in_memory_and_under_a_budget() {
    let dir = scratch("nan_sparse");
    // A profile and bundle of the clean model fit the damaged copy: the NaN is in attention,
    // outside the FFN tensors they are tied to.
    let clean = Model::load(fixture_path("llama-linear")).unwrap();
    let profile = profile(&clean);
    let path = dir.join("nan.gguf");
    nan_copy("llama-linear", "blk.0.attn_output.weight", &path);
    let bpath = dir.join("nan.gguf.bundle");
    let info = bundle::write_bundle(&bpath, &clean, &profile, &mut |_, _| {}).unwrap();

    let model = Model::load(&path).unwrap();
    let mut s = session(&model);
    s.set_sparsity(Some(profile.clone()), HALF).unwrap();
    assert!(s.sparse_decode_on());
    let e = s.eval(&[7], 0).unwrap_err().to_string();
    assert!(e.contains("layer 0 (attention)"), "{e}");

    let (resident, _) = Model::load_resident(&path).unwrap();
    let mut s = session(&resident);
    s.set_sparsity(Some(profile), HALF).unwrap();
    s.set_neuron_bundle(Some(info)).unwrap();
    let min = s.fixed_region().total();
    s.set_mem_budget(Some(min)).unwrap();
    assert!(s.offload().unwrap().neurons.is_some());
    let e = s.eval(&[7], 0).unwrap_err().to_string();
    assert!(e.contains("layer 0 (attention)"), "{e}");
}

#[test]
fn a_damaged_bundle_cluster_fails_the_step_naming_file_layer_and_cluster() {
    let dir = scratch("bundle_damage");
    let path = dir.join("m.gguf");
    std::fs::copy(fixture_path("llama-linear"), &path).unwrap();
    let model = Model::load(&path).unwrap();
    let profile = profile(&model);
    let bpath = dir.join("m.gguf.bundle");
    let info = bundle::write_bundle(&bpath, &model, &profile, &mut |_, _| {}).unwrap();
    let l = info.layout;
    let (resident, _) = Model::load_resident(&path).unwrap();
    let mut s = session(&resident);
    s.set_sparsity(Some(profile), HALF).unwrap();
    s.set_neuron_bundle(Some(info)).unwrap();
    // No room for a hot region: every record is read, through the cold slots, at every token.
    let min = s.fixed_region().total();
    s.set_mem_budget(Some(min)).unwrap();
    assert_eq!(
        s.offload()
            .unwrap()
            .neurons
            .as_ref()
            .unwrap()
            .hot_per_layer(),
        0
    );
    s.eval(&[1, 2, 3], 2).unwrap();
    let reference = s.eval(&[4], 0).unwrap().to_vec();
    let before = s.tokens().to_vec();

    // One bit of one record of cluster 40 flipped on disk.
    let cluster = 40;
    let at = l.record_offset(0, l.ranks_of(cluster).start + 1) + 5;
    let mut bytes = std::fs::read(&bpath).unwrap();
    bytes[at as usize] ^= 0x04;
    std::fs::write(&bpath, &bytes).unwrap();
    // The one-layer model's records all fit the cold slots, read once: a new cache reads them
    // again (SmolLM2's 30 layers cycle through them, tests/damaged_data.rs).
    s.set_mem_budget(Some(min)).unwrap();
    let e = s.eval(&[5], 0).unwrap_err().to_string();
    assert!(e.contains(&bpath.display().to_string()), "{e}");
    assert!(e.contains(&format!("layer 0 cluster {cluster} ")), "{e}");
    assert!(e.contains("corrupt"), "{e}");
    assert_eq!(s.tokens(), &before[..], "nothing of the failed step stays");
    // It keeps failing while the file is damaged (nothing bad was cached) ...
    assert!(s.eval(&[5], 0).is_err());
    // ... and with the byte restored the same step gives what an undamaged file gives.
    bytes[at as usize] ^= 0x04;
    std::fs::write(&bpath, &bytes).unwrap();
    s.truncate(3);
    assert_eq!(s.eval(&[4], 0).unwrap(), &reference[..]);
}

#[test]
fn a_damaged_profile_is_refused_naming_its_file() {
    let dir = scratch("profile_damage");
    let model = Model::load(fixture_path("llama-linear")).unwrap();
    let p = profile(&model);
    let path = dir.join("m.sparsity");
    p.write(&path).unwrap();
    assert_eq!(ProfileData::read(&path).unwrap().order, p.order);
    let good = std::fs::read(&path).unwrap();
    // A byte of every part of the body: thresholds, statistics, order, predictor.
    for at in [200, good.len() / 3, good.len() / 2, good.len() - 70] {
        let mut b = good.clone();
        b[at] ^= 0x01;
        std::fs::write(&path, &b).unwrap();
        let e = ProfileData::read(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("checksum mismatch"), "byte {at}: {e}");
    }
}
