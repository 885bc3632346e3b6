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

/// Opens a model; under a memory budget its FFN weights stay out of memory (see
/// [`Model::load_resident`]). With sparse decode under a budget, the sparsity profile and the
/// neuron bundle must exist before the budget is set: when one is missing, the model is let go,
/// a child process makes the files (`threads` for a calibration) and the model is opened again
/// (made here, beside the resident copy and a session, they would need more memory than a small
/// budget leaves: a first run at `--mem-budget 69M` under an 85 MiB limit was OOM-killed).
pub fn load_model_for(
    path: &std::path::Path,
    budget: &crate::cli::BudgetArgs,
    sparsity: &crate::cli::SparsityArgs,
    threads: usize,
) -> anyhow::Result<Arc<Model>> {
    if budget.mem_budget.is_none() {
        return load_model_at(Some(path));
    }
    let load = || -> anyhow::Result<Arc<Model>> {
        Ok(Model::load_resident(path)
            .with_context(|| format!("cannot load {}", path.display()))?
            .0)
    };
    let model = load()?;
    if (sparsity.sparsity > 0.0 || sparsity.predictor)
        && !sparse_files_ready(&model, path, sparsity)?
    {
        drop(model);
        make_sparse_files(path, sparsity, threads)?;
        return load();
    }
    Ok(model)
}

/// [`load_model_for`] with the engine flags' budget, sparsity and threads.
pub fn load_model_for_engine(
    path: &std::path::Path,
    engine: &EngineArgs,
) -> anyhow::Result<Arc<Model>> {
    load_model_for(path, &engine.budget, &engine.sparsity, engine.threads)
}

/// Whether the profile sparse decode will use (`--profile`, or a current one in the default
/// places) and, with sparsity above 0, its neuron bundle exist.
fn sparse_files_ready(
    model: &Model,
    path: &std::path::Path,
    sparsity: &crate::cli::SparsityArgs,
) -> anyhow::Result<bool> {
    use sparsetop_engine::offload::bundle;
    use sparsetop_engine::sparse::ProfileData;
    let profile = match sparsity.profile.as_deref() {
        Some(p) => Some(Arc::new(ProfileData::read(p)?)),
        None => stored_profile(model, path, &mut |_| {})?.0,
    };
    Ok(profile.is_some_and(|p| {
        sparsity.sparsity == 0.0 || bundle::find_bundle(path, &model.ffn_hash(), &p).is_some()
    }))
}

/// Makes the model's sparsity profile and (with sparsity above 0) its neuron bundle in a child
/// process (`sparsetop convert`, or `calibrate` for the profile alone): calibration's working
/// memory (60-80 MB for SmolLM2) then goes back to the system when the child exits, where in
/// this process the allocator would keep some of it and the budget run after it would go over a
/// tight limit.
fn make_sparse_files(
    path: &std::path::Path,
    sparsity: &crate::cli::SparsityArgs,
    threads: usize,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program to run `convert`")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg(if sparsity.sparsity > 0.0 {
        "convert"
    } else {
        "calibrate"
    })
    .arg("-m")
    .arg(path)
    .arg("-t")
    .arg(threads.to_string());
    if let (true, Some(p)) = (sparsity.sparsity > 0.0, &sparsity.profile) {
        cmd.arg("--profile").arg(p);
    }
    // The child's report goes to stderr with the rest of the progress: this command's stdout is
    // its own (`--json` output, generated text).
    let status = cmd
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .context("cannot run `sparsetop convert` to make the neuron bundle")?;
    if !status.success() {
        anyhow::bail!(
            "making the sparsity profile or neuron bundle for {} failed ({status}; its message is above)",
            path.display()
        );
    }
    Ok(())
}

/// Sets the session's memory budget, if one was asked for, and says how it is used.
pub fn apply_budget(session: &mut Session, budget: &crate::cli::BudgetArgs) -> anyhow::Result<()> {
    let Some(b) = budget.mem_budget else {
        return Ok(());
    };
    let mut bar = super::convert::progress_bar("writing the neuron bundle");
    set_budget_with(session, Some(b), &mut |p| match p {
        super::calibrate::Progress::Note(s) | super::calibrate::Progress::Detail(s) => {
            diag!("{s}")
        }
        super::calibrate::Progress::Stage { done, total, .. } => bar(done, total),
    })?;
    for line in describe_budget(session) {
        diag!("{line}");
    }
    Ok(())
}

/// Sets (or with `None` lifts) the session's memory budget. With sparse decode on, the neuron
/// bundle it reads is installed first: found next to the model or in the cache, or written now,
/// which `report` hears about (a note, then `(done, total)` layers as a stage) instead of stderr,
/// so the TUI can show it on its screen. Call it again after sparsity goes from 0 to above 0 or
/// back, or the predictor is turned on or off: the engine's neuron cache and fixed region depend
/// on them.
pub fn set_budget_with(
    session: &mut Session,
    budget: Option<u64>,
    report: &mut dyn FnMut(super::calibrate::Progress),
) -> anyhow::Result<()> {
    if budget.is_some() && session.sparse_decode_on() {
        let info = neuron_bundle_with(session, report)?;
        session.set_neuron_bundle(Some(info))?;
    }
    session.set_mem_budget(budget)?;
    Ok(())
}

/// How the session's memory budget is used, in lines for a person (none without a budget).
pub fn describe_budget(session: &Session) -> Vec<String> {
    use sparsetop_engine::offload::budget::mib;
    let Some(o) = session.offload() else {
        return vec![];
    };
    let mut lines = vec![];
    if let Some(n) = &o.neurons {
        lines.push(format!(
            "neuron cache: hot region {} records per layer, cold region {} slots ({})",
            n.hot_per_layer(),
            n.cold_slots(),
            mib(n.bytes() as u64)
        ));
    }
    // With the neuron cache the layer stream holds no layer: it only carries prompt batches.
    let ffn = match &o.neurons {
        Some(_) => {
            "prompts stream the FFN layers from the file, decode reads neurons through the cache"
                .to_string()
        }
        None => format!(
            "{} of {} FFN layers resident, the rest streamed from the file",
            o.stream.resident_layers(),
            session.model().config.n_layer
        ),
    };
    lines.push(format!(
        "memory budget {}: fixed region {}; {ffn}",
        mib(o.budget),
        o.fixed.describe(),
    ));
    lines
}
/// Under a memory budget, prompt batches are capped: a batch's activation buffers count against
/// the budget (at 512 tokens they would take ~15 MB for SmolLM2), while every extra batch only
/// streams the FFN once more.
pub fn batch_for_budget(batch: usize, budget: &crate::cli::BudgetArgs) -> usize {
    match budget.mem_budget {
        Some(_) => batch.min(64),
        None => batch,
    }
}

/// The neuron bundle for the session's model and profile: found next to the model or in the
/// cache, or written now (from the model in memory, or else from the mapped model file, whose
/// pages are dropped afterwards), telling `report` as [`set_budget_with`] says.
pub fn neuron_bundle_with(
    session: &Session,
    report: &mut dyn FnMut(super::calibrate::Progress),
) -> anyhow::Result<sparsetop_engine::offload::bundle::BundleInfo> {
    use super::calibrate::Progress;
    use sparsetop_engine::offload::bundle;
    let model = session.model();
    let path = model
        .file
        .path()
        .ok_or_else(|| anyhow::anyhow!("a memory budget needs a model read from a file"))?
        .to_path_buf();
    let profile = &session
        .sparse()
        .ok_or_else(|| anyhow::anyhow!("the neuron bundle needs sparse decode on"))?
        .profile;
    if let Some(info) = bundle::find_bundle(&path, &model.ffn_hash(), profile) {
        return Ok(info);
    }
    report(Progress::Note(
        "writing the neuron bundle for this model and profile (once; `sparsetop convert` does it ahead)"
            .into(),
    ));
    const STAGE: &str = "writing the neuron bundle";
    // Both the progress and the notice (waiting for another sparsetop writing it) go to `report`.
    let report = std::cell::RefCell::new(report);
    let mut progress = |done, total| {
        (report.borrow_mut())(Progress::Stage {
            stage: STAGE,
            done,
            total,
        })
    };
    let mut notice = |m: &str| (report.borrow_mut())(Progress::Note(m.to_string()));
    if model.ffn_in_memory() {
        return Ok(bundle::ensure_bundle(&path, model, profile, &mut notice, &mut progress)?.1);
    }
    let full = load_model_at(Some(&path))?;
    let (_, info) = bundle::ensure_bundle(&path, &full, profile, &mut notice, &mut progress)?;
    drop(full);
    sparsetop_engine::offload::evict_from_page_cache(&path);
    Ok(info)
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
            n_batch: batch_for_budget(engine.batch_size, &engine.budget),
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
    use sparsetop_engine::sparse::ProfileData;
    if let Some(p) = explicit {
        return Ok(Arc::new(ProfileData::read(p)?));
    }
    let (found, stale) = stored_profile(model, model_path, report)?;
    if let Some(p) = found {
        return Ok(p);
    }
    report(Progress::Note(if stale {
        "making a new sparsity profile for this model (once)".into()
    } else {
        "no sparsity profile for this model yet: calibrating it now (once)".into()
    }));
    // Calibration runs the FFN densely: a model opened for a budget has no FFN in memory, so
    // calibrate on the mapped file (once; its pages are dropped afterwards).
    let full;
    let model = if model.ffn_in_memory() {
        model
    } else {
        full = load_model_at(Some(model_path))?;
        &full
    };
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

/// The model's profile from the default places (next to the model, then the cache), when one
/// there is current; and whether a stale one was found (another version of sparsetop, or the
/// model file changed), which `report` hears about.
fn stored_profile(
    model: &Model,
    model_path: &std::path::Path,
    report: &mut dyn FnMut(super::calibrate::Progress),
) -> anyhow::Result<(Option<Arc<sparsetop_engine::sparse::ProfileData>>, bool)> {
    use super::calibrate::Progress;
    use sparsetop_engine::sparse::{profile, ProfileData};
    let candidates = [
        profile::default_path(model_path),
        profile::cache_path(model_path)?,
    ];
    // A profile found in a default location is remade when it is stale: it was made
    // automatically, so it is remade the same way. A profile named with --profile is never
    // replaced.
    let mut stale = false;
    for c in &candidates {
        if c.is_file() {
            match ProfileData::read(c) {
                Ok(p) if p.model_hash == model.ffn_hash() => return Ok((Some(Arc::new(p)), stale)),
                Ok(_) => report(Progress::Note(format!(
                    "{} is for another model",
                    c.display()
                ))),
                Err(e) => report(Progress::Note(format!("cannot use {}: {e}", c.display()))),
            }
            stale = true;
        }
    }
    Ok((None, stale))
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
