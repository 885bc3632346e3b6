//! Tokenizer built from GGUF metadata with the `tokenizers` crate.
