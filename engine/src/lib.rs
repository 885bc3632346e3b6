//! sparsetop's inference engine: GGUF models on the CPU, with activation sparsity and flash offload.
//!
//! No UI here: the app drives the engine and reads its telemetry events.

pub mod error;
pub mod fetch;
pub mod ggml_type;
pub mod gguf;
pub mod quant;

pub use error::{Error, Result};
pub use ggml_type::GgmlType;
