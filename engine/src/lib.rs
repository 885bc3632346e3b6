//! sparsetop's inference engine: GGUF models on the CPU, with activation sparsity and flash offload.
//!
//! No UI here: the app drives the engine and reads its telemetry events.

pub mod bandwidth;
pub mod chat;
pub mod conversation;
pub mod error;
pub mod fetch;
pub mod generate;
pub mod ggml_type;
pub mod gguf;
pub mod model;
pub mod offload;
pub mod ops;
pub mod perplexity;
pub mod quant;
pub mod sampler;
pub mod sparse;
pub mod telemetry;
pub mod threadpool;
pub mod tokenizer;

pub use error::{Error, Result};
pub use ggml_type::GgmlType;
pub use model::{Model, Session, SessionOptions};
pub use ops::Precision;
