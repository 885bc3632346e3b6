//! Damaged data is never used, as a user meets it: `sparsetop run` on the real default model with
//! a neuron bundle whose records were damaged, with a damaged profile, and on a model whose
//! weights hold a NaN, fails with a message naming what is damaged, where a run used to finish
//! with other text (issue #15, rows 3 and 13).

mod common;

use sparsetop_engine::gguf::GgufFile;
use sparsetop_engine::offload::bundle;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sparsetop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsetop"))
        .args(args)
        .output()
        .expect("run sparsetop")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failed run whose message holds every one of `needles`, with no panic.
fn assert_refused(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure; stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr should mention {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "panic: {err}");
}

/// A scratch folder holding the default model (a link to the cached file) with its sparsity
/// profile (the tests' small one) and neuron bundle next to it, where `run` looks for them.
fn model_with_sparse_files(name: &str) -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let m = dir.join("model.gguf");
    std::os::unix::fs::symlink(common::model_path(), &m).unwrap();
    let profile = common::small_profile();
    profile
        .write(&sparsetop_engine::sparse::profile::default_path(&m))
        .unwrap();
    let b = bundle::default_path(&m);
    bundle::write_bundle(&b, &common::model(), &profile, &mut |_, _| {}).unwrap();
    (m, b)
}

fn run_under_budget(m: &Path) -> Output {
    let m = m.display().to_string();
    sparsetop(&[
        "run",
        "-m",
        &m,
        "-t",
        "2",
        "-p",
        "The capital of France is",
        "-n",
        "8",
        "--temp",
        "0",
        "-c",
        "256",
        "--mem-budget",
        "80M",
        "--sparsity",
        "0.5",
    ])
}

#[test]
fn a_bundle_with_damaged_records_stops_the_run_naming_file_layer_and_cluster() {
    let (m, b) = model_with_sparse_files("damaged_bundle");
    let o = run_under_budget(&m);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("calibrating"),
        "the files made here are used: {}",
        stderr(&o)
    );
    // Flip a bit in a record of layer 7, cluster 300 (a cold neuron: read from the file at
    // every token under this budget).
    let info = bundle::read_info(&b).unwrap();
    let l = info.layout;
    let at = l.record_offset(7, l.ranks_of(300).start + 2) + 100;
    let f = std::fs::OpenOptions::new().write(true).open(&b).unwrap();
    let mut byte = [0u8];
    std::os::unix::fs::FileExt::read_at(&std::fs::File::open(&b).unwrap(), &mut byte, at).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, &[byte[0] ^ 0x20], at).unwrap();
    f.sync_all().unwrap();
    let o = run_under_budget(&m);
    assert_refused(
        &o,
        &[&b.display().to_string(), "layer 7 cluster 300 ", "corrupt"],
    );
}

#[test]
fn a_damaged_profile_is_refused_naming_its_file() {
    let (m, _) = model_with_sparse_files("damaged_profile");
    let p = sparsetop_engine::sparse::profile::default_path(&m);
    let mut bytes = std::fs::read(&p).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    let named = m.with_file_name("named.sparsity");
    std::fs::write(&named, &bytes).unwrap();
    let (m, named) = (m.display().to_string(), named.display().to_string());
    let o = sparsetop(&[
        "run",
        "-m",
        &m,
        "-t",
        "2",
        "-p",
        "Hi",
        "-n",
        "2",
        "--sparsity",
        "0.5",
        "--profile",
        &named,
    ]);
    assert_refused(&o, &[&named, "checksum mismatch"]);
}

/// A copy of the tiny fixture `llama-linear` whose layer-0 attention output matrix (Q5_K) has a
/// NaN block scale.
fn nan_model(name: &str) -> PathBuf {
    let src = common::project_file("tests/conformance/llama-linear.gguf");
    let f = GgufFile::open(&src).unwrap();
    let t = f.tensor_info("blk.0.attn_output.weight").unwrap();
    assert_eq!(t.dtype, sparsetop_engine::GgmlType::Q5_K);
    let mut bytes = f.bytes().to_vec();
    bytes[t.offset..t.offset + 2].copy_from_slice(&0x7e00u16.to_le_bytes());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let m = dir.join("nan.gguf");
    std::fs::write(&m, bytes).unwrap();
    m
}

#[test]
fn a_model_with_nan_weights_stops_naming_the_layer() {
    let m = nan_model("nan_weights").display().to_string();
    for args in [
        &["run", "-m", &m, "-p", "hello world", "-n", "4"][..],
        &["run", "-m", &m, "-p", "hello world", "-n", "4", "--json"][..],
    ] {
        let o = sparsetop(args);
        assert_refused(&o, &["non-finite", "layer 0 (attention)"]);
    }
}
