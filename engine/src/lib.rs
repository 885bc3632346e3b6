//! sparsetop's inference engine: GGUF models on the CPU, with activation sparsity and flash offload.
//!
//! No UI here: the app drives the engine and reads its telemetry events.

// The engine reports through return values and telemetry, not the terminal; the rare warning it
// writes must not panic when stderr is unwritable (`eprintln!` does), so print macros are out.
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::print_stderr))]

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
pub mod safe_write;
pub mod sampler;
pub mod sparse;
pub mod telemetry;
pub mod threadpool;
pub mod tokenizer;

pub use error::{Error, Result};
pub use ggml_type::GgmlType;
pub use model::{Model, Session, SessionOptions};
pub use ops::Precision;
