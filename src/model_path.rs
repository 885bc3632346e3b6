//! Which model file a command runs: the one given with `-m` (a path, or the name of a model of the
//! catalogue, pulled into the cache on first use), or the default model, likewise.

use anyhow::{bail, Context};
use sparsetop_engine::fetch::{self, catalogue};
use std::path::{Path, PathBuf};

/// Resolves `-m`: an existing file is used as it is; otherwise a catalogue name is fetched if
/// needed (progress on stderr). Without `-m`, the default model.
pub fn resolve(model: Option<&Path>) -> anyhow::Result<PathBuf> {
    let Some(p) = model else {
        return fetch::ensure_default_model(&mut |m| diag!("{m}")).context(
            "could not obtain the default model (pass -m PATH to use a GGUF file you have)",
        );
    };
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    match p.to_str().and_then(catalogue::find) {
        Some(m) => fetch::ensure_model(m, &mut |m| diag!("{m}"))
            .with_context(|| format!("could not obtain the model {}", m.name)),
        None => bail!(
            "model file not found: {} (nor is it the name of a model sparsetop can fetch: {})",
            p.display(),
            catalogue::known_names()
        ),
    }
}
