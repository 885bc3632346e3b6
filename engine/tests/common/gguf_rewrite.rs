//! Rewrites a real GGUF file with edits (metadata changed, added or removed; extra zero rows at
//! the end of some matrices), so a test can start from a working model and break exactly one thing.

#![allow(dead_code)]

use super::gguf_builder::GgufBuilder;
use sparsetop_engine::gguf::{GgufFile, Value};

/// What to change.
#[derive(Default)]
pub struct Edits {
    /// Metadata entries to set: replaced in place when the key exists, appended otherwise.
    pub set: Vec<(String, Value)>,
    /// Metadata keys to leave out.
    pub remove: Vec<String>,
    /// Rows of zeros appended to these matrices (`[cols, rows]` tensors), e.g. a padded embedding.
    pub extra_rows: Vec<(String, u64)>,
}

/// The bytes of `src` with `edits` applied (same tensors, types and order; offsets recomputed).
pub fn rewrite(src: &GgufFile, edits: &Edits) -> Vec<u8> {
    let mut b = GgufBuilder::new();
    b.version = src.version;
    b.align = src.alignment;
    let mut set: Vec<&(String, Value)> = edits.set.iter().collect();
    for (k, v) in src.metadata.entries() {
        if edits.remove.contains(k) {
            continue;
        }
        let v = match set.iter().position(|(sk, _)| sk == k) {
            Some(i) => &set.remove(i).1,
            None => v,
        };
        b = b.kv(k, v.clone());
    }
    for (k, v) in set {
        b = b.kv(k, v.clone());
    }
    for t in &src.tensors {
        let mut dims = t.dims.clone();
        let mut data = src
            .tensor(&t.name)
            .expect("tensor of the file")
            .data
            .to_vec();
        if let Some((_, n)) = edits.extra_rows.iter().find(|(name, _)| *name == t.name) {
            assert!(dims.len() >= 2, "{} is not a matrix", t.name);
            dims[1] += n;
            data.resize(data.len() + t.row_bytes() * *n as usize, 0);
        }
        b = b.tensor_raw(t.name.as_bytes(), &dims, t.dtype.id(), data, None);
    }
    b.build()
}
