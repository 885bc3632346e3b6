//! `sparsetop calibrate`: make a model's sparsity profile.

use crate::cli::CalibrateArgs;
use crate::model_path;
use anyhow::Context;
use sparsetop_engine::safe_write::{self, Busy};
use sparsetop_engine::sparse::calibrate::{calibrate, CalibrateOptions};
use sparsetop_engine::sparse::profile;
use sparsetop_engine::Model;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The default calibration text, built into the binary so an installed sparsetop has it.
pub const DEFAULT_TEXT: &str = include_str!("../../assets/calibration.txt");

pub fn run(a: &CalibrateArgs) -> anyhow::Result<()> {
    let path = model_path::resolve(a.model.as_deref())?;
    // Where the profile goes, checked before loading and the calibration: an output that is the
    // model or the text, a device or a FIFO, or an unwritable folder is refused now.
    let inputs: Vec<&Path> = std::iter::once(path.as_path())
        .chain(a.file.as_deref())
        .collect();
    let dest = destination(&path, a.output.as_deref(), &inputs)?;
    let model = Model::load(&path).with_context(|| format!("cannot load {}", path.display()))?;
    let text = match &a.file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        }
        None => DEFAULT_TEXT.to_string(),
    };
    let out = make_profile_to(
        &model,
        &text,
        &dest,
        &inputs,
        a.tokens,
        a.rank,
        a.threads,
        &mut print_progress(),
    )?;
    outln!("{}", out.display())
}

/// What calibration tells as it goes. The command line prints it on stderr; the TUI, whose
/// screen stderr would scribble over, shows it in its chat and status line instead.
pub enum Progress<'a> {
    /// A line worth showing anywhere (what is calibrated, how long it took, where it went).
    Note(String),
    /// A line of detail for the command line (the predictor's quality per layer).
    Detail(String),
    /// `done` of `total` steps of a stage.
    Stage {
        stage: &'a str,
        done: usize,
        total: usize,
    },
}

/// Prints calibration progress on stderr: notes as lines, stages as a bar redrawn in place.
pub fn print_progress() -> impl FnMut(Progress) {
    let mut bar = super::progress::StderrBar::default();
    move |p| match p {
        Progress::Note(s) | Progress::Detail(s) => diag!("{s}"),
        Progress::Stage { stage, done, total } => bar.draw(stage, done, total, ""),
    }
}

/// Calibrates `model` on `text` and writes the profile (to `output`, or next to the model, or in
/// the cache directory), telling its progress to `report`. Where the profile goes is settled (and
/// checked) before the calibration starts.
#[allow(clippy::too_many_arguments)]
pub fn make_profile_with(
    model: &Arc<Model>,
    model_path: &Path,
    text: &str,
    output: Option<&Path>,
    max_tokens: usize,
    rank: usize,
    threads: usize,
    report: &mut dyn FnMut(Progress),
) -> anyhow::Result<PathBuf> {
    let dest = destination(model_path, output, &[model_path])?;
    make_profile_to(
        model,
        text,
        &dest,
        &[model_path],
        max_tokens,
        rank,
        threads,
        report,
    )
}

/// Where a profile goes: `output` (checked: not one of `inputs`, not a special file, its folder
/// writable), or next to the model, or in the cache directory ([`profile::destination`]).
pub fn destination(
    model_path: &Path,
    output: Option<&Path>,
    inputs: &[&Path],
) -> anyhow::Result<PathBuf> {
    Ok(match output {
        Some(p) => safe_write::check_target(p, inputs)?,
        None => profile::destination(model_path)?,
    })
}

/// Calibrates `model` on `text` and writes the profile to `dest`, which must not be one of
/// `inputs`; tells its progress to `report`.
#[allow(clippy::too_many_arguments)]
fn make_profile_to(
    model: &Arc<Model>,
    text: &str,
    dest: &Path,
    inputs: &[&Path],
    max_tokens: usize,
    rank: usize,
    threads: usize,
    report: &mut dyn FnMut(Progress),
) -> anyhow::Result<PathBuf> {
    let tokens = model.tokenizer.encode(text, true, false)?;
    report(Progress::Note(format!(
        "calibrating on {} tokens (of {}), predictor rank {rank}",
        tokens.len().min(max_tokens),
        tokens.len()
    )));
    let opts = CalibrateOptions {
        max_tokens,
        rank,
        n_threads: threads,
        ..Default::default()
    };
    let t0 = std::time::Instant::now();
    let (prof, quality) = calibrate(model, &tokens, &opts, &mut |stage, done, total| {
        report(Progress::Stage { stage, done, total })
    })?;
    report(Progress::Note(format!(
        "done in {:.1} s",
        t0.elapsed().as_secs_f64()
    )));
    if rank > 0 {
        report(Progress::Detail(
            "predictor at sparsity 0.5, per layer (recall / precision / gate rows read):".into(),
        ));
        for (i, r) in quality.iter().enumerate() {
            report(Progress::Detail(format!(
                "  layer {i:>2}: recall {:.3}  precision {:.3}  reads {:>5.1}%",
                r.recall,
                r.precision,
                r.predicted_share * 100.0
            )));
        }
    }
    prof.write_with(
        dest,
        inputs,
        Busy::Wait(&mut |m| report(Progress::Note(m.to_string()))),
    )
    .with_context(|| format!("cannot write the profile to {}", dest.display()))?;
    report(Progress::Note(format!(
        "profile written to {}",
        dest.display()
    )));
    Ok(dest.to_path_buf())
}
