//! The engine's error type. Every failure a user can cause (a bad file, a bad flag, a prompt that does
//! not fit) is a variant with a message that names what is wrong; panics are reserved for bugs.

use std::path::PathBuf;

/// Everything that can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error, with the path it happened on. The OS error is part of the message and not
    /// also given as the error's source: printed with its chain (`{:#}`), it appeared twice.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The GGUF file is malformed: `what` says which field and why.
    #[error("malformed GGUF: {0}")]
    Gguf(String),
    /// A tensor type the engine cannot compute with.
    #[error("unsupported tensor type {0}")]
    UnsupportedType(String),
    /// The model's architecture or hyper-parameters are not supported or inconsistent.
    #[error("model: {0}")]
    Model(String),
    /// Tokenizer construction or use failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Chat template rendering failed.
    #[error("chat template: {0}")]
    Template(String),
    /// The request does not fit the context window.
    #[error("context: {0}")]
    Context(String),
    /// Fetching the default model failed.
    #[error("fetch: {0}")]
    Fetch(String),
    /// An invalid argument (flag value, sampler setting...).
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an `io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }
}
