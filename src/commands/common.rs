//! Setup shared by the commands that run the model.

use crate::cli::{EngineArgs, SamplingArgs};
use crate::model_path;
use anyhow::Context;
use sparsetop_engine::sampler::SamplerParams;
use sparsetop_engine::{Model, Session, SessionOptions};
use std::sync::Arc;

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
            n_threads: threads_or_default(engine.threads),
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

/// Turns on sparse decode per the flags: finds the model's profile (or calibrates it first, with
/// the default text, when there is none) and installs it in the session.
pub fn apply_sparsity(
    session: &mut Session,
    model_path: &std::path::Path,
    args: &crate::cli::SparsityArgs,
    threads: usize,
) -> anyhow::Result<()> {
    if args.sparsity == 0.0 && !args.predictor {
        return Ok(());
    }
    let profile = load_profile(
        session.model(),
        model_path,
        args.profile.as_deref(),
        threads,
    )?;
    session.set_sparsity(
        Some(profile),
        sparsetop_engine::sparse::SparsityConfig {
            level: args.sparsity,
            predictor: args.predictor,
        },
    )?;
    Ok(())
}

/// The sparsity profile of a model: `explicit`, else next to the model, else in the cache; made
/// by calibration when none exists.
pub fn load_profile(
    model: &Arc<Model>,
    model_path: &std::path::Path,
    explicit: Option<&std::path::Path>,
    threads: usize,
) -> anyhow::Result<Arc<sparsetop_engine::sparse::ProfileData>> {
    load_profile_with(
        model,
        model_path,
        explicit,
        threads,
        &mut super::calibrate::print_progress(),
    )
}

/// [`load_profile`], telling what it finds and the calibration's progress to `report` instead of
/// stderr (the TUI shows them on its screen).
pub fn load_profile_with(
    model: &Arc<Model>,
    model_path: &std::path::Path,
    explicit: Option<&std::path::Path>,
    threads: usize,
    report: &mut dyn FnMut(super::calibrate::Progress),
) -> anyhow::Result<Arc<sparsetop_engine::sparse::ProfileData>> {
    use super::calibrate::Progress;
    use sparsetop_engine::sparse::{profile, ProfileData};
    if let Some(p) = explicit {
        return Ok(Arc::new(ProfileData::read(p)?));
    }
    let candidates = [
        profile::default_path(model_path),
        profile::cache_path(model_path)?,
    ];
    // A profile found in a default location is remade when it is stale (another version of
    // sparsetop, or the model file changed): it was made automatically, so it is remade the same
    // way. A profile named with --profile is never replaced.
    let mut stale = false;
    for c in &candidates {
        if c.is_file() {
            match ProfileData::read(c) {
                Ok(p) if p.model_hash == profile::model_hash(&model.file, model.config.n_layer) => {
                    return Ok(Arc::new(p))
                }
                Ok(_) => report(Progress::Note(format!(
                    "{} is for another model",
                    c.display()
                ))),
                Err(e) => report(Progress::Note(format!("cannot use {}: {e}", c.display()))),
            }
            stale = true;
        }
    }
    report(Progress::Note(if stale {
        "making a new sparsity profile for this model (once)".into()
    } else {
        "no sparsity profile for this model yet: calibrating it now (once)".into()
    }));
    let path = super::calibrate::make_profile_with(
        model,
        model_path,
        super::calibrate::DEFAULT_TEXT,
        None,
        4096,
        64,
        threads,
        report,
    )?;
    Ok(Arc::new(ProfileData::read(&path)?))
}

/// The path of the model the flags name (resolving the default one).
pub fn model_file(engine: &EngineArgs) -> anyhow::Result<std::path::PathBuf> {
    model_path::resolve(engine.model.as_deref())
}

/// `-t`, or when it is 0 the number of physical cores (SMT siblings share one core's execution
/// units and memory port, so counting them only adds synchronisation).
pub fn threads_or_default(t: usize) -> usize {
    if t > 0 {
        return t;
    }
    sysinfo::System::physical_core_count()
        .filter(|&n| n > 0)
        .unwrap_or_else(sparsetop_engine::model::session::default_threads)
}
