//! `sparsetop pull [NAME]`: download and verify a model of the catalogue (the default model when
//! no name is given) and print its path; `pull --list` shows the catalogue.

use crate::cli::PullArgs;
use crate::output;
use sparsetop_engine::fetch::{self, catalogue};
use std::fmt::Write;

pub fn run(a: &PullArgs) -> anyhow::Result<()> {
    if a.list {
        return output::stream(&list()?);
    }
    let model = match &a.name {
        Some(name) => catalogue::lookup(name)?,
        None => catalogue::CatalogueModel::default_model(),
    };
    let path = fetch::pull_model(model, &mut |m| diag!("{m}"))?;
    output::stream(&format!("{}\n", path.display()))
}

/// The catalogue as a table: name, size, whether cached (and where), what it is.
fn list() -> anyhow::Result<String> {
    let mut s = String::new();
    writeln!(s, "| name | size | cached | model | also called |")?;
    writeln!(s, "| --- | ---: | --- | --- | --- |")?;
    for m in catalogue::MODELS {
        let cached = match m.path() {
            Ok(p) if p.is_file() => p.display().to_string(),
            _ => "no".into(),
        };
        writeln!(
            s,
            "| {} | {:.2} GB | {cached} | {} | {} |",
            m.name,
            m.size as f64 / 1e9,
            m.description,
            m.aliases.join(", ")
        )?;
    }
    Ok(s)
}
