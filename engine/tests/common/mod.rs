pub mod gguf_builder;
pub mod gguf_rewrite;
pub mod rng;
