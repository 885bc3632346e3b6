//! Setup shared by the commands that run the model.

use crate::cli::{EngineArgs, SamplingArgs};
use crate::model_path;
use anyhow::Context;
use sparsetop_engine::sampler::SamplerParams;
use sparsetop_engine::{Model, Session, SessionOptions};
use std::sync::Arc;

/// Loads the model named by the flags (or the default one).
pub fn load_model(engine: &EngineArgs) -> anyhow::Result<Arc<Model>> {
    load_model_at(engine.model.as_deref())
}

/// Loads the model at `path` (or the default one).
pub fn load_model_at(path: Option<&std::path::Path>) -> anyhow::Result<Arc<Model>> {
    let path = model_path::resolve(path)?;
    Model::load(&path).with_context(|| format!("cannot load {}", path.display()))
}

/// A session with the flags' context, batch, threads and precision.
pub fn new_session(model: &Arc<Model>, engine: &EngineArgs) -> anyhow::Result<Session> {
    if engine.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    Ok(Session::new(
        model.clone(),
        &SessionOptions {
            n_ctx: engine.ctx_size,
            n_batch: engine.batch_size,
            n_threads: engine.threads,
            precision: engine.precision,
        },
    )?)
}

/// Sampler settings from the flags; without `--seed` a fresh random seed.
pub fn sampler_params(s: &SamplingArgs) -> anyhow::Result<SamplerParams> {
    let p = SamplerParams {
        temp: s.temp,
        top_k: s.top_k,
        top_p: s.top_p,
        min_p: s.min_p,
        repeat_penalty: s.repeat_penalty,
        repeat_last_n: s.repeat_last_n,
        seed: s.seed.unwrap_or_else(random_seed),
    };
    p.validate()?;
    Ok(p)
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS; mixing in the time guards against a constant seed.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// `-n` as an optional limit (-1 or any negative = none).
pub fn n_predict(n: i64) -> Option<usize> {
    usize::try_from(n).ok()
}
