pub mod gguf_builder;
pub mod rng;
pub mod gguf_rewrite;
