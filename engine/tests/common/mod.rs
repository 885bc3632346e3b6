pub mod gguf_builder;
pub mod rng;
