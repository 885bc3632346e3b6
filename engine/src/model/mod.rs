//! A loaded model: the mapped file, its configuration, weights, tokenizer and chat template.

pub mod config;
pub mod kv_cache;
pub mod rope;
pub mod session;
pub mod weights;

pub use config::{Arch, ModelConfig, SUPPORTED_ARCHITECTURES};
pub use session::{Session, SessionOptions};

use crate::chat::ChatTemplate;
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;
use rope::Rope;
use std::path::Path;
use std::sync::Arc;
use weights::Weights;

/// Everything read from a GGUF file that the forward pass and the chat need. Immutable once
/// loaded, so one model can back several sessions.
pub struct Model {
    pub file: GgufFile,
    pub config: ModelConfig,
    pub weights: Weights,
    pub tokenizer: Tokenizer,
    pub chat_template: ChatTemplate,
    pub rope: Rope,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .finish()
    }
}

impl Model {
    /// Opens a GGUF file and checks that it describes a model the engine can run.
    pub fn load(path: impl AsRef<Path>) -> Result<Arc<Model>> {
        let file = GgufFile::open(path)?;
        Self::from_gguf(file)
    }

    /// Builds a model from an already opened file.
    pub fn from_gguf(file: GgufFile) -> Result<Arc<Model>> {
        // Architecture first: an unsupported one should say so, not complain about its tokenizer.
        let arch = file.metadata.req_str("general.architecture")?;
        if !SUPPORTED_ARCHITECTURES.contains(&arch) {
            return Err(Error::Model(format!(
                "unsupported architecture '{arch}' (supported: {})",
                SUPPORTED_ARCHITECTURES.join(", ")
            )));
        }
        let tokenizer = Tokenizer::from_gguf(&file.metadata)?;
        let config = ModelConfig::from_metadata(&file.metadata, tokenizer.n_vocab())?;
        if tokenizer.n_vocab() > config.n_vocab {
            return Err(Error::Model(format!(
                "tokenizer has {} tokens but the model's vocabulary is {}",
                tokenizer.n_vocab(),
                config.n_vocab
            )));
        }
        let weights = Weights::load(&file, &config)?;
        let chat_template = ChatTemplate::from_gguf(&file.metadata, &tokenizer)?;
        let rope = Rope::new(&config.rope, weights.rope_freqs.as_deref());
        Ok(Arc::new(Model {
            file,
            config,
            weights,
            tokenizer,
            chat_template,
            rope,
        }))
    }

    /// The context length used when the user asks for `requested` (0 = default 4096), capped at
    /// what the model was trained for.
    pub fn context_len(&self, requested: usize) -> usize {
        let want = if requested == 0 { 4096 } else { requested };
        want.min(self.config.n_ctx_train)
    }
}
