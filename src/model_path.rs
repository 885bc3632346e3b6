//! Which model file a command runs: the one given with `-m`, or the default model, pulled into the
//! cache on first use.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// Resolves `-m` (checking it exists) or fetches the default model, reporting progress on stderr.
pub fn resolve(model: Option<&Path>) -> anyhow::Result<PathBuf> {
    match model {
        Some(p) => {
            if !p.exists() {
                bail!("model file not found: {}", p.display());
            }
            Ok(p.to_path_buf())
        }
        None => sparsetop_engine::fetch::ensure_default_model(&mut |m| diag!("{m}")).context(
            "could not obtain the default model (pass -m PATH to use a GGUF file you have)",
        ),
    }
}
