pub mod gguf_builder;
