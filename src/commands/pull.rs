//! `sparsetop pull`: download and verify the default model.

pub fn run() -> anyhow::Result<()> {
    let path = sparsetop_engine::fetch::pull_default_model(&mut |m| diag!("{m}"))?;
    outln!("{}", path.display())
}
