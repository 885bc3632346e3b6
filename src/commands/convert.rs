//! `sparsetop convert`: write a model's neuron-bundle file, the FFN laid out for flash offload.

use super::common;
use crate::cli::ConvertArgs;
use crate::model_path;
use anyhow::Context;
use sparsetop_engine::offload::bundle::{self, BundleInfo, BundleLayout};
use sparsetop_engine::safe_write::{self, Busy};
use sparsetop_engine::sparse::profile;
use sparsetop_engine::Model;
use std::path::Path;
use std::time::Instant;

pub fn run(a: &ConvertArgs) -> anyhow::Result<()> {
    let path = model_path::resolve(a.model.as_deref())?;
    // Where the bundle goes, checked before the model is loaded or a profile calibrated: an
    // output that is the model or the profile, a device or a FIFO, or an unwritable folder is
    // refused now, with nothing written.
    let inputs: Vec<&Path> = std::iter::once(path.as_path())
        .chain(a.profile.as_deref())
        .collect();
    let dest = match &a.output {
        Some(o) => Ok(safe_write::check_target(o, &inputs)?),
        // With no place to write, refused now too, unless a bundle already there may be current
        // (a read-only model folder can hold one made earlier, and then nothing needs writing):
        // that is known only once the model is loaded.
        None => match bundle::destination(&path) {
            Err(e) if a.force || !bundle_exists(&path) => return Err(e.into()),
            d => d,
        },
    };
    let model = Model::load(&path).with_context(|| format!("cannot load {}", path.display()))?;
    // Before the profile, which may mean a calibration: a model that cannot be bundled fails now.
    let layout = BundleLayout::for_model(&model.weights)?;
    let profile = common::load_profile(
        &model,
        &path,
        a.profile.as_deref(),
        common::threads_or_default(a.threads),
    )?;
    if !a.force {
        let hash = profile::model_hash(&model.file, layout.n_layer);
        let existing = match &a.output {
            Some(o) => bundle::read_info(o)
                .ok()
                .filter(|i| bundle::check_matches(i, &hash, &profile).is_ok()),
            None => bundle::find_bundle(&path, &hash, &profile),
        };
        if let Some(info) = existing {
            // The header matched; make sure the data did not rot either before calling it done.
            let t0 = Instant::now();
            match bundle::verify_file(&info, &mut progress_bar("verifying the existing bundle")) {
                Ok(()) => {
                    report(&info, "up to date, checked", t0)?;
                    return Ok(());
                }
                Err(e) => diag!("{e}: rebuilding it"),
            }
        }
    }
    let dest = dest?;
    let t0 = Instant::now();
    // Another `convert` of the same bundle is waited for (and said so): both then succeed, each
    // writing a whole file of its own.
    let info = bundle::write_bundle_with(
        &dest,
        &model,
        &profile,
        &inputs,
        Busy::Wait(&mut |m| diag!("{m}")),
        &mut progress_bar("writing"),
    )
    .with_context(|| format!("cannot write the neuron bundle to {}", dest.display()))?;
    report(&info, "written", t0)
}

/// Whether a bundle file is next to the model or in the cache.
fn bundle_exists(model: &Path) -> bool {
    [
        Some(bundle::default_path(model)),
        bundle::cache_path(model).ok(),
    ]
    .into_iter()
    .flatten()
    .any(|p| p.is_file())
}

/// Prints the bundle's path, then its size and shape, on stdout.
fn report(info: &BundleInfo, what: &str, t0: Instant) -> anyhow::Result<()> {
    let l = &info.layout;
    outln!("{}", info.path.display())?;
    outln!(
        "  {:.1} MiB: {} × {} neurons, records of {} bytes (gate {} {} + up {} {} + down {} Q8_0), {} per {}-byte cluster",
        l.file_bytes() as f64 / (1 << 20) as f64,
        l.n_layer,
        l.n_ff,
        l.record_bytes,
        l.gate_bytes,
        l.gate_type,
        l.up_bytes,
        l.up_type,
        l.down_bytes,
        l.per_cluster,
        l.cluster_bytes,
    )?;
    outln!("  {what} in {:.2} s", t0.elapsed().as_secs_f64())
}

/// A progress bar on stderr for `(done, total)` callbacks, redrawn only when it changes.
pub fn progress_bar(stage: &str) -> impl FnMut(usize, usize) + '_ {
    let mut bar = super::progress::StderrBar::default();
    move |done, total| bar.draw(stage, done, total, " layers")
}
