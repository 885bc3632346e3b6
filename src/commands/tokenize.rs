//! `sparsetop tokenize`: text to token ids, printed as a JSON array.

use crate::cli::TokenizeArgs;
use crate::{model_path, output};
use anyhow::Context;
use sparsetop_engine::gguf::GgufFile;
use sparsetop_engine::tokenizer::Tokenizer;

pub fn run(a: &TokenizeArgs) -> anyhow::Result<()> {
    let text = match (&a.prompt, &a.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        }
        (None, None) => anyhow::bail!("no text: give it with -p TEXT or -f FILE"),
    };
    let path = model_path::resolve(a.model.as_deref())?;
    // Only the tokenizer is needed: the model's architecture does not matter here.
    let file = GgufFile::open(&path)?;
    let tok = Tokenizer::from_gguf(&file.metadata)?;
    let ids = tok.encode(&text, !a.no_bos, !a.no_parse_special)?;
    output::stream(&format!("{}\n", serde_json::to_string(&ids)?))
}
