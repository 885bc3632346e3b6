//! `sparsetop inspect`: what a GGUF file holds, readable by a person.

use crate::cli::InspectArgs;
use crate::{model_path, output};
use sparsetop_engine::gguf::{GgufFile, Value};
use sparsetop_engine::model::ModelConfig;
use sparsetop_engine::tokenizer::Tokenizer;
use std::collections::BTreeMap;
use std::fmt::Write;

pub fn run(a: &InspectArgs) -> anyhow::Result<()> {
    let path = model_path::resolve(a.model.as_deref())?;
    let f = GgufFile::open(&path)?;
    let md = &f.metadata;
    let mut s = String::new();
    writeln!(s, "file:          {}", path.display())?;
    writeln!(
        s,
        "format:        GGUF v{}, {} metadata keys, {} tensors, alignment {}, {}",
        f.version,
        md.len(),
        f.tensors.len(),
        f.alignment,
        mib(f.file_size() as u64)
    )?;
    if let Some(name) = md.str("general.name")? {
        writeln!(s, "name:          {name}")?;
    }
    let arch = md.str("general.architecture")?.unwrap_or("(none)");
    writeln!(s, "architecture:  {arch}")?;
    let tok = Tokenizer::from_gguf(md);
    match ModelConfig::from_metadata(md, tok.as_ref().map(|t| t.n_vocab()).unwrap_or(0)) {
        Ok(c) => {
            writeln!(s, "layers:        {}", c.n_layer)?;
            writeln!(s, "embedding:     {}", c.n_embd)?;
            writeln!(s, "feed-forward:  {}", c.n_ff)?;
            writeln!(
                s,
                "heads:         {} query, {} key/value (head size {} / {})",
                c.n_head, c.n_head_kv, c.head_dim_k, c.head_dim_v
            )?;
            writeln!(s, "vocabulary:    {}", c.n_vocab)?;
            writeln!(s, "trained ctx:   {}", c.n_ctx_train)?;
            writeln!(s, "rms epsilon:   {:e}", c.rms_eps)?;
            let r = &c.rope;
            writeln!(
                s,
                "rope:          {:?}, {} dims, base {}, scaling {:?} (freq scale {})",
                r.style, r.n_rot, r.freq_base, r.scaling, r.freq_scale
            )?;
        }
        Err(e) => writeln!(s, "hyper-params:  not runnable: {e}")?,
    }
    match &tok {
        Ok(t) => {
            writeln!(
                s,
                "tokenizer:     {} ({}), {} tokens, bos {:?}, eos {:?}, end-of-generation {:?}",
                md.str("tokenizer.ggml.model")?.unwrap_or("?"),
                md.str("tokenizer.ggml.pre")?.unwrap_or("default"),
                t.n_vocab(),
                t.bos_id(),
                t.eos_id(),
                t.eog_ids()
            )?;
        }
        Err(e) => writeln!(s, "tokenizer:     unusable: {e}")?,
    }
    writeln!(
        s,
        "chat template: {}",
        if md.get("tokenizer.chat_template").is_some() {
            "yes (from the file)"
        } else {
            "none (ChatML will be used)"
        }
    )?;
    let mut by_type: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for t in &f.tensors {
        let e = by_type.entry(t.dtype.name()).or_default();
        e.0 += 1;
        e.1 += t.size as u64;
    }
    writeln!(s, "tensor types:")?;
    for (ty, (n, bytes)) in &by_type {
        writeln!(s, "  {ty:<8} {n:>5} tensors  {}", mib(*bytes))?;
    }
    writeln!(s, "metadata:")?;
    for (k, v) in md.entries() {
        writeln!(s, "  {k} = {}", short(v))?;
    }
    if a.tensors {
        writeln!(s, "tensors:")?;
        for t in &f.tensors {
            writeln!(
                s,
                "  {:<32} {:<6} {:?} {} bytes @ {}",
                t.name, t.dtype, t.dims, t.size, t.offset
            )?;
        }
    }
    output::stream(&s)
}

fn mib(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / (1024.0 * 1024.0))
}

/// A metadata value in one short line; long arrays and strings are summarised.
fn short(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() > 80 => {
            format!(
                "{:?}... ({} chars)",
                s.chars().take(60).collect::<String>(),
                s.chars().count()
            )
        }
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) if a.len() > 8 => format!(
            "[{}, ...] ({} {} items)",
            a.iter().take(4).map(short).collect::<Vec<_>>().join(", "),
            a.len(),
            a.first().map(Value::type_name).unwrap_or("")
        ),
        Value::Array(a) => format!("[{}]", a.iter().map(short).collect::<Vec<_>>().join(", ")),
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Bool(x) => x.to_string(),
    }
}
