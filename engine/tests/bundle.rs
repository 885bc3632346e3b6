//! The neuron bundle of flash offload: every record holds exactly the model's gate and up rows and
//! a down column that brings back the model's own `down` values, in the profile's order; cluster CRCs catch damaged
//! data; damaged, foreign or stale files are refused with a message that says what to do.
//!
//! Runs on the tiny conformance models in `tests/conformance/` (partial last clusters, K-quants,
//! gate and up of different types), and on the real SmolLM2 when it is in the cache. The
//! two-layer fixtures change their gate/up types from layer to layer, which a bundle cannot hold
//! (one record size per file): the tests use copies whose layer 1 takes layer 0's types.

mod common;

use common::gguf_builder::GgufBuilder;
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};
use sparsetop_engine::gguf::{GgufFile, Value};
use sparsetop_engine::offload::bundle::{self, BundleInfo, BundleLayout, HEADER, PAGE};
use sparsetop_engine::quant::dequantize_row;
use sparsetop_engine::sparse::down_cols::{ColKind, DownCols};
use sparsetop_engine::sparse::profile::{model_hash, Dims, ProfileData};
use sparsetop_engine::{GgmlType, Model};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const FIXTURES: &[&str] = &["llama-spm", "qwen2-bpe", "llama-linear"];

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/conformance")
        .join(format!("{name}.gguf"))
}

/// A conformance fixture with every layer's gate and up of layer 0's types: layer `l > 0` gets
/// layer 0's gate and up tensors with their rows in reverse order (valid blocks, other bytes).
fn uniform_gguf(name: &str) -> Vec<u8> {
    let src = GgufFile::open(fixture_path(name)).unwrap();
    let mut b = GgufBuilder::new();
    for (k, v) in src.metadata.entries() {
        b = match (k.as_str(), v) {
            ("general.alignment", Value::U32(a)) => b.alignment(*a),
            _ => b.kv(k, v.clone()),
        };
    }
    for t in &src.tensors {
        let part = ["ffn_gate", "ffn_up"]
            .into_iter()
            .find(|p| t.name.ends_with(&format!(".{p}.weight")) && !t.name.starts_with("blk.0."));
        let (from, data) = match part {
            Some(p) => {
                let l0 = src.tensor_info(&format!("blk.0.{p}.weight")).unwrap();
                let rows = &src.bytes()[l0.offset..l0.offset + l0.size];
                let rev = rows.chunks_exact(l0.row_bytes()).rev().flatten().copied();
                (l0, rev.collect())
            }
            None => (t, src.bytes()[t.offset..t.offset + t.size].to_vec()),
        };
        b = b.tensor(&t.name, &from.dims, from.dtype, data);
    }
    b.build()
}

fn fixture(name: &str) -> Arc<Model> {
    // `from_gguf` of an in-memory image: the engine reads it as it reads a mapped file.
    Model::from_gguf(GgufFile::from_bytes(uniform_gguf(name)).unwrap()).unwrap()
}

/// The names in a folder, sorted.
fn only_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("bundle")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A profile for `model` whose per-layer order is a random permutation (the only part of a profile
/// a bundle uses); the statistics are placeholders of the right sizes.
fn profile_for(model: &Model, seed: u64) -> ProfileData {
    let c = &model.config;
    let (n_layer, n_ff) = (c.n_layer, c.n_ff);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order = Vec::with_capacity(n_layer * n_ff);
    for _ in 0..n_layer {
        let mut o: Vec<u32> = (0..n_ff as u32).collect();
        o.shuffle(&mut rng);
        order.extend(o);
    }
    let p = ProfileData {
        dims: Dims {
            n_layer,
            n_ff,
            n_embd: c.n_embd,
            n_levels: 1,
            rank: 0,
        },
        calib_tokens: 0,
        model_hash: model_hash(&model.file, n_layer),
        levels: vec![0.5],
        gate_thresholds: vec![0.0; n_layer],
        act_thresholds: vec![0.0; n_layer],
        mean_abs_act: vec![0.0; n_layer * n_ff],
        freq: vec![0; n_layer * n_ff],
        order,
        pred_a: vec![].into(),
        pred_b: vec![].into(),
        pred_thresholds: vec![0.0; n_layer],
        pred_recall: vec![0.0; n_layer],
    };
    p.validate().unwrap();
    p
}

/// Writes the bundle and checks it byte by byte against the model, and its CRCs.
fn write_and_check(model: &Model, profile: &ProfileData, path: &Path) -> BundleInfo {
    let mut calls = vec![];
    let info = bundle::write_bundle(path, model, profile, &mut |d, t| calls.push((d, t))).unwrap();
    let n_layer = model.config.n_layer;
    assert_eq!(calls.first(), Some(&(0, n_layer)));
    assert_eq!(calls.last(), Some(&(n_layer, n_layer)));
    assert_eq!(
        only_files(path.parent().unwrap()),
        [path.file_name().unwrap().to_string_lossy()],
        "the temporary file is renamed and the lock file removed"
    );
    let read = bundle::read_info(path).unwrap();
    assert_eq!(read, info);
    assert_eq!(read.orders, profile.order);
    bundle::check_matches(&read, &model_hash(&model.file, n_layer), profile).unwrap();

    let l = read.layout;
    assert_eq!(l, BundleLayout::for_model(&model.weights).unwrap());
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.len() as u64, l.file_bytes());
    assert_eq!(l.data_offset % PAGE as u64, 0);
    assert_eq!(l.cluster_bytes % PAGE, 0);
    let src = model.file.bytes();
    for (li, lw) in model.weights.layers.iter().enumerate() {
        // Only the scales: each record's column must bring back the model's own `down` values.
        let kind = ColKind::for_types(model.weights.layers.iter().map(|l| l.down.dtype));
        let down = DownCols::build(
            &lw.down,
            lw.down.rows_data(src, 0, lw.down.rows),
            kind,
            false,
        )
        .unwrap();
        let n_embd = lw.down.rows;
        let mut dense = vec![0f32; n_embd * lw.down.cols];
        for r in 0..n_embd {
            dequantize_row(
                lw.down.dtype,
                lw.down.rows_data(src, r, r + 1),
                &mut dense[r * lw.down.cols..(r + 1) * lw.down.cols],
            )
            .unwrap();
        }
        let mut col = vec![0f32; n_embd];
        let lossless = matches!(
            (kind, lw.down.dtype),
            (_, GgmlType::Q4_0) | (ColKind::Nib4, _) | (_, GgmlType::Q8_0)
        );
        for (rank, &neuron) in profile.order(li).iter().enumerate() {
            let i = neuron as usize;
            let at = l.record_offset(li, rank) as usize;
            let (gate, up, dn) = l.split_record(&bytes[at..at + l.record_bytes]);
            assert_eq!(
                gate,
                lw.gate.rows_data(src, i, i + 1),
                "layer {li} rank {rank} gate"
            );
            assert_eq!(
                up,
                lw.up.rows_data(src, i, i + 1),
                "layer {li} rank {rank} up"
            );
            down.dequantize_col(dn, i, &mut col);
            for (r, &c) in col.iter().enumerate() {
                let row = &dense[r * lw.down.cols..(r + 1) * lw.down.cols];
                let w = row[i];
                if lossless {
                    assert_eq!(c, w, "layer {li} rank {rank} down row {r}");
                } else {
                    // Re-quantized to 8 bits per block of 32 neurons: within half a step.
                    let b0 = i / 32 * 32;
                    let amax = row[b0..b0 + 32].iter().fold(0f32, |m, v| m.max(v.abs()));
                    assert!(
                        (c - w).abs() <= amax / 127.0 * 0.51 + 1e-7,
                        "layer {li} rank {rank} down row {r}: {c} vs {w}"
                    );
                }
            }
        }
        for c in 0..l.clusters_per_layer {
            let at = l.cluster_offset(li, c) as usize;
            let cluster = &bytes[at..at + l.cluster_bytes];
            bundle::verify_cluster(&read, li, c, cluster).unwrap();
            // Past the cluster's last record: zeros.
            let used = l.ranks_of(c).len() * l.record_bytes;
            assert!(cluster[used..].iter().all(|&b| b == 0));
        }
    }
    bundle::verify_file(&read, &mut |_, _| {}).unwrap();
    read
}

#[test]
fn records_are_the_model_rows_in_profile_order() {
    for name in FIXTURES {
        let model = fixture(name);
        let profile = profile_for(&model, 7);
        let dir = scratch(&format!("round_trip_{name}"));
        let info = write_and_check(&model, &profile, &dir.join("m.gguf.bundle"));
        let l = info.layout;
        // n_embd 256, n_ff 512 in every fixture: a column is 128 bytes of nibbles (Q4_0/Q4_1
        // `down`) or 256 bytes (any other type).
        let kind = ColKind::for_types(model.weights.layers.iter().map(|l| l.down.dtype));
        assert_eq!(l.down_kind, kind, "{name}");
        let want = if kind == ColKind::Nib4 { 128 } else { 256 };
        assert_eq!(l.down_bytes, want, "{name}");
        assert_eq!(l.per_cluster, PAGE / l.record_bytes, "{name}");
        assert_eq!(
            l.clusters_per_layer,
            512usize.div_ceil(l.per_cluster),
            "{name}"
        );
    }
}

/// A fixture's bundle written once per test that needs one, in its own directory.
fn written(test: &str) -> (Arc<Model>, ProfileData, BundleInfo, PathBuf) {
    let model = fixture("llama-spm");
    let profile = profile_for(&model, 11);
    let path = scratch(test).join("m.gguf.bundle");
    let info = bundle::write_bundle(&path, &model, &profile, &mut |_, _| {}).unwrap();
    (model, profile, info, path)
}

fn read_err(path: &Path) -> String {
    bundle::read_info(path).unwrap_err().to_string()
}

#[test]
fn damaged_headers_and_tables_are_refused() {
    let (_, _, info, path) = written("damaged");
    let good = std::fs::read(&path).unwrap();
    let l = info.layout;
    let with = |f: &dyn Fn(&mut Vec<u8>)| -> String {
        let mut b = good.clone();
        f(&mut b);
        std::fs::write(&path, &b).unwrap();
        read_err(&path)
    };
    let e = with(&|b| b.truncate(b.len() - PAGE));
    assert!(
        e.contains("truncated") && e.contains("sparsetop convert"),
        "{e}"
    );
    let e = with(&|b| b.truncate(100));
    assert!(e.contains("truncated"), "{e}");
    let e = with(&|b| b.truncate(0));
    assert!(e.contains("truncated"), "{e}");
    let e = with(&|b| b.extend_from_slice(&[0; 16]));
    assert!(e.contains("size") && e.contains("corrupt"), "{e}");
    let e = with(&|b| b[0] = b'X');
    assert!(
        e.contains("bad magic") && e.contains("not a sparsetop neuron bundle"),
        "{e}"
    );
    // Version 1 (Q8_0 down columns) and a future version.
    for v in [1, 3] {
        let e = with(&|b| b[8] = v);
        assert!(
            e.contains(&format!("version {v}")) && e.contains("sparsetop convert"),
            "{e}"
        );
    }
    // Any other header byte: a dimension, an offset, the model hash, a reserved byte, the
    // checksum itself.
    for at in [16, 20, 40, 64, 96, 120, 150, 180, 210, 250] {
        let e = with(&|b| b[at] ^= 1);
        assert!(e.contains("header checksum mismatch"), "byte {at}: {e}");
    }
    // The order table, the CRC table, the padding after them.
    for at in [
        HEADER + 5,
        l.crc_offset as usize + 1,
        l.data_offset as usize - 1,
    ] {
        let e = with(&|b| b[at] ^= 0x40);
        assert!(
            e.contains("checksum mismatch in the order and CRC tables"),
            "byte {at}: {e}"
        );
    }
    // Data damage is not a header matter: read_info passes, the cluster's CRC fails.
    let at = l.record_offset(1, 100) as usize + 3;
    let mut b = good.clone();
    b[at] ^= 1;
    std::fs::write(&path, &b).unwrap();
    let read = bundle::read_info(&path).unwrap();
    let c = l.cluster_of(100);
    let off = l.cluster_offset(1, c) as usize;
    let e = bundle::verify_cluster(&read, 1, c, &b[off..off + l.cluster_bytes])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("layer 1 cluster {c} is corrupt")) && e.contains("CRC32"),
        "{e}"
    );
    let e = bundle::verify_file(&read, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("is corrupt"), "{e}");
    let e = bundle::verify_cluster(&read, 1, c, &b[off..off + 100])
        .unwrap_err()
        .to_string();
    assert!(e.contains("100 bytes read"), "{e}");
    let e = bundle::verify_cluster(&read, 2, 0, &b[off..off + l.cluster_bytes])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no cluster 0 in layer 2"), "{e}");
    let e = read_err(&path.with_file_name("absent.bundle"));
    assert!(e.contains("absent.bundle"), "{e}");
}

#[test]
fn bundles_of_another_model_or_order_are_refused() {
    let (model, profile, info, _) = written("mismatch");
    let hash = model_hash(&model.file, model.config.n_layer);
    bundle::check_matches(&info, &hash, &profile).unwrap();
    let mut other = hash;
    other[0] ^= 1;
    let e = bundle::check_matches(&info, &other, &profile)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("different model") && e.contains("rerun `sparsetop convert`"),
        "{e}"
    );
    let mut reordered = profile.clone();
    reordered.order.swap(3, 4);
    let e = bundle::check_matches(&info, &hash, &reordered)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("different sparsity profile") && e.contains("rerun `sparsetop convert`"),
        "{e}"
    );
    // Another model's bundle: the tiny qwen2's.
    let qwen = fixture("qwen2-bpe");
    let qhash = model_hash(&qwen.file, qwen.config.n_layer);
    let e = bundle::check_matches(&info, &qhash, &profile_for(&qwen, 11))
        .unwrap_err()
        .to_string();
    assert!(e.contains("different model"), "{e}");
}

#[test]
fn the_writer_refuses_a_foreign_or_broken_profile() {
    let model = fixture("llama-spm");
    let dir = scratch("writer_refuses");
    let path = dir.join("m.gguf.bundle");
    let mut p = profile_for(&model, 3);
    p.model_hash = [0; 32];
    let e = bundle::write_bundle(&path, &model, &p, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("different model") && e.contains("sparsetop calibrate"),
        "{e}"
    );
    let mut p = profile_for(&model, 3);
    p.order[1] = p.order[0];
    let e = bundle::write_bundle(&path, &model, &p, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("twice"), "{e}");
    let qwen = fixture("qwen2-bpe");
    let e = bundle::write_bundle(&path, &model, &profile_for(&qwen, 3), &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("different model"), "{e}");
    assert!(only_files(&dir).is_empty(), "nothing is written");
}

#[test]
fn ensure_bundle_reuses_a_valid_file_and_rebuilds_a_stale_one() {
    let dir = scratch("ensure");
    let model_path = dir.join("tiny.gguf");
    std::fs::write(&model_path, uniform_gguf("llama-spm")).unwrap();
    let model = Model::load(&model_path).unwrap();
    let profile = profile_for(&model, 5);
    let mut built = 0;
    let (path, info) =
        bundle::ensure_bundle(&model_path, &model, &profile, &mut |_| {}, &mut |_, _| {
            built += 1
        })
        .unwrap();
    assert_eq!(path, dir.join("tiny.gguf.bundle"));
    assert_eq!(path, bundle::default_path(&model_path));
    assert!(built > 0);
    built = 0;
    let (again, info2) =
        bundle::ensure_bundle(&model_path, &model, &profile, &mut |_| {}, &mut |_, _| {
            built += 1
        })
        .unwrap();
    assert_eq!((again, &info2), (path.clone(), &info));
    assert_eq!(built, 0, "a valid matching bundle is reused");
    // Another profile: rebuilt in place.
    let other = profile_for(&model, 6);
    let (p3, info3) =
        bundle::ensure_bundle(&model_path, &model, &other, &mut |_| {}, &mut |_, _| {
            built += 1
        })
        .unwrap();
    assert_eq!(p3, path);
    assert!(built > 0);
    assert_eq!(info3.orders, other.order);
    assert_eq!(bundle::read_info(&path).unwrap(), info3);
    // A damaged file: rebuilt too.
    std::fs::write(&path, b"junk").unwrap();
    built = 0;
    bundle::ensure_bundle(&model_path, &model, &other, &mut |_| {}, &mut |_, _| {
        built += 1
    })
    .unwrap();
    assert!(built > 0);
    bundle::verify_file(&bundle::read_info(&path).unwrap(), &mut |_, _| {}).unwrap();
}

#[test]
fn gate_or_up_types_that_change_across_layers_are_refused() {
    let mixed = Model::load(fixture_path("llama-spm")).unwrap();
    let e = BundleLayout::for_model(&mixed.weights)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot make a neuron bundle")
            && e.contains("layer 1's ffn_gate is Q5_K, layer 0's is Q5_0"),
        "{e}"
    );
}

/// The real default model, fetched (once, into the cache) like every other test that needs it:
/// without it this test fails rather than passing untested.
#[test]
fn smollm2_bundle() {
    let path = sparsetop_engine::fetch::ensure_default_model(&mut |m| eprintln!("{m}"))
        .expect("the default model is needed by this test and could not be obtained");
    let model = Model::load(&path).unwrap();
    let profile = profile_for(&model, 1);
    let out = scratch("smollm2").join("smol.gguf.bundle");
    let info = write_and_check(&model, &profile, &out);
    let l = info.layout;
    assert_eq!((l.n_layer, l.n_ff, l.n_embd), (30, 1536, 576));
    assert_eq!(l.record_bytes, 360 + 360 + 288);
    assert_eq!(
        (l.per_cluster, l.cluster_bytes, l.clusters_per_layer),
        (4, 4096, 384)
    );
    assert_eq!(l.file_bytes(), l.data_offset + 30 * 384 * 4096);
    std::fs::remove_file(&out).unwrap();
}
