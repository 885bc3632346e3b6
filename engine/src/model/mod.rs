//! A loaded model: the mapped file, its configuration, weights, tokenizer and chat template.

pub mod config;
pub mod kv_cache;
pub mod rope;
pub mod session;
pub mod traffic;
pub mod vocab_size;
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
    /// sha256 of the FFN tensors (see [`crate::sparse::profile::model_hash`]), computed on first
    /// use, or before the FFN bytes leave memory in [`Model::load_resident`].
    ffn_hash: std::sync::OnceLock<[u8; 32]>,
    ffn_in_memory: bool,
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
        vocab_size::check(&file, tokenizer.n_vocab(), Some(config.n_vocab))?;
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
            ffn_hash: std::sync::OnceLock::new(),
            ffn_in_memory: true,
        }))
    }

    /// Opens a model for running under a memory budget: everything but the FFN matrices is copied
    /// into memory the process owns, the map of the file is dropped and its pages are evicted from
    /// the page cache, so the FFN weights are read only through the offload path and never sit in
    /// the page cache (which a memory limit counts). Returns the model and the bytes kept.
    pub fn load_resident(path: impl AsRef<Path>) -> Result<(Arc<Model>, usize)> {
        let path = path.as_ref();
        let mut file = GgufFile::open(path)?;
        // From here on, tensor bytes are read from the file and dropped from the page cache.
        file.set_read_through_file(true);
        let model = Self::from_gguf(file)?;
        let mut model =
            Arc::try_unwrap(model).map_err(|_| Error::Invalid("model shared".into()))?;
        model.ffn_hash();
        let n_layer = model.config.n_layer;
        let ffn: std::collections::HashSet<String> = (0..n_layer)
            .flat_map(|l| {
                ["ffn_gate", "ffn_up", "ffn_down"]
                    .into_iter()
                    .map(move |p| format!("blk.{l}.{p}.weight"))
            })
            .collect();
        let kept = model.file.make_resident(&|t| !ffn.contains(&t.name))?;
        model.file.metadata.drop_large_arrays(4096);
        model.ffn_in_memory = false;
        Ok((Arc::new(model), kept))
    }

    /// Whether the FFN matrices are in the model's memory image (false after
    /// [`Model::load_resident`]: they must be read through a session's memory budget).
    pub fn ffn_in_memory(&self) -> bool {
        self.ffn_in_memory
    }

    /// sha256 of the FFN tensors: what sparsity profiles and bundle files are checked against.
    pub fn ffn_hash(&self) -> [u8; 32] {
        *self
            .ffn_hash
            .get_or_init(|| crate::sparse::profile::model_hash(&self.file, self.config.n_layer))
    }

    /// The context length used when the user asks for `requested` (0 = default 4096), capped at
    /// what the model was trained for.
    pub fn context_len(&self, requested: usize) -> usize {
        let want = if requested == 0 { 4096 } else { requested };
        want.min(self.config.n_ctx_train)
    }
}
