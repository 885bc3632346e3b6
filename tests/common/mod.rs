//! Shared helpers of the integration tests: the real default model (fetched when missing: tests
//! that need it fail rather than skip when it cannot be had) and the golden files.

#![allow(dead_code)]

pub mod tmux;

use serde_json::Value;
use sparsetop_engine::Model;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Path of the default model, pulled into the cache on first use.
pub fn model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        sparsetop_engine::fetch::ensure_default_model(&mut |m| eprintln!("{m}"))
            .expect("the default model is needed by this test and could not be obtained")
    })
    .clone()
}

/// The default model, loaded once per test binary.
pub fn model() -> Arc<Model> {
    static MODEL: OnceLock<Arc<Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| Model::load(model_path()).expect("load the default model"))
        .clone()
}

/// A golden file from `tests/golden/`.
pub fn golden(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).expect("golden JSON")
}

/// A JSON array of numbers as token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array of ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Path of a project file.
pub fn project_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A small sparsity profile of the default model (512 calibration tokens, predictor rank 8),
/// made once per test binary: enough to exercise sparse decode, quick to make.
pub fn small_profile() -> Arc<sparsetop_engine::sparse::ProfileData> {
    use sparsetop_engine::sparse::calibrate::{calibrate, CalibrateOptions};
    static P: OnceLock<Arc<sparsetop_engine::sparse::ProfileData>> = OnceLock::new();
    P.get_or_init(|| {
        let model = model();
        let text = std::fs::read_to_string(project_file("assets/calibration.txt")).unwrap();
        let tokens = model.tokenizer.encode(&text, true, false).unwrap();
        let opts = CalibrateOptions {
            max_tokens: 512,
            n_ctx: 256,
            rank: 8,
            n_threads: 2,
        };
        let (p, report) = calibrate(&model, &tokens, &opts, &mut |_, _, _| {}).unwrap();
        assert_eq!(report.len(), model.config.n_layer);
        Arc::new(p)
    })
    .clone()
}
