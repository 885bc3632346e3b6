//! The GGUF reader, then everything loading a model does with what it read: configuration,
//! tokenizer, weight shapes, chat template. Any input must give `Ok` or an error, never a panic,
//! a hang or an allocation larger than the input calls for (run with `-rss_limit_mb`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparsetop_engine::gguf::GgufFile;
use sparsetop_engine::Model;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    // What the reader promises about a file it accepted: every tensor is inside the file.
    for t in &file.tensors {
        let v = file
            .tensor(&t.name)
            .expect("a listed tensor can be looked up");
        assert_eq!(v.data.len(), t.size);
        let _ = (t.n_rows(), t.row_len(), t.row_bytes(), t.n_elements());
    }
    for (k, v) in file.metadata.entries() {
        assert!(file.metadata.get(k).is_some());
        let _ = (
            v.as_u64(),
            v.as_i64(),
            v.as_f64(),
            v.as_str(),
            v.type_name(),
        );
    }
    if let Ok(model) = Model::from_gguf(file) {
        let _ = model.context_len(0);
    }
});
