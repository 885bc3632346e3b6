//! What flows into the app besides keys: the chat text and outcome from the engine worker,
//! telemetry, and host samples. The same items are written by `--record` and read back by
//! `replay`, so a replay drives the app exactly as the live engine did.

use super::metrics::HostSample;
use serde::{Deserialize, Serialize};
use sparsetop_engine::telemetry::Event;

/// Chat traffic. These go over an unbounded channel: unlike telemetry, none may be lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The person sent a message.
    User { text: String },
    /// The system message was set with `/system`.
    System { text: String },
    /// The conversation was cleared.
    Cleared,
    /// The oldest messages were dropped so the prompt fits the context.
    Dropped { messages: usize },
    /// A piece of the answer (possibly empty while a character is incomplete).
    Token { text: String },
    /// The answer ended.
    Done {
        prompt_tokens: usize,
        prompt_tok_s: f64,
        generated: usize,
        gen_tok_s: f64,
        /// Tokens in the context after the answer.
        ctx_used: usize,
        /// `end`, `limit`, `context full` or `stopped`.
        stop: String,
    },
    /// Generation failed; the message says why.
    Error { message: String },
    /// Sparse decode's settings in force after a `/sparsity`, `/predictor`, `[` or `]` request.
    /// `error` says why the request was refused, and then the settings are the unchanged ones.
    /// Apart from [`ChatEvent::Error`] so a refusal never ends or trims an answer in progress.
    Sparsity {
        level: f32,
        predictor: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// News from making a sparsity profile (the first time sparsity is turned on without one):
    /// what is found and done, for the chat.
    CalibrationNote { text: String },
    /// How far a calibration stage has come, for the status line (sent when the percentage
    /// changes, not per step).
    CalibrationProgress {
        stage: String,
        done: usize,
        total: usize,
    },
    /// News from writing the neuron bundle (the first time sparse decode runs under a memory
    /// budget without one), for the chat.
    BundleNote { text: String },
    /// How far writing the neuron bundle has come, in layers, for the status line (sent when the
    /// percentage changes).
    BundleProgress { done: usize, total: usize },
    /// The memory budget in force and how it is used: at startup, after a `/budget`, `+` or `-`
    /// request (`error` then says why it was refused, and the state is the unchanged one), and
    /// after a sparsity change made the worker set the budget again.
    Budget {
        state: BudgetState,
        why: BudgetWhy,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// What a [`ChatEvent::Budget`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetWhy {
    /// The session as it starts.
    Start,
    /// A `/budget`, `+` or `-` request.
    Request,
    /// Sparsity went from 0 to above 0 or back, or the predictor was turned on or off: the
    /// budget was set again to rebuild the engine's neuron cache and fixed region.
    Sparsity,
}

/// The engine's memory budget and how it is used (see `Session::offload`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetState {
    /// The budget in bytes; `None`: no budget, the whole model is in memory.
    pub budget: Option<u64>,
    /// What must stay resident whatever the budget (a budget's minimum), in bytes, and its parts
    /// in words. Without a budget it leaves out the neuron cache's cold slots, which sparse decode
    /// under a budget adds.
    pub fixed: u64,
    pub fixed_parts: String,
    pub n_layer: usize,
    /// Dense FFN layers kept in memory; the others stream from the model file.
    pub resident_layers: usize,
    /// Sparse decode's neuron cache, when sparsity is on under the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neurons: Option<NeuronCacheState>,
    /// The budget can be lifted: the model's FFN weights are in memory (it was opened without
    /// one).
    pub removable: bool,
}

/// The neuron cache of sparse decode under a budget: the hottest neurons of each layer stay in
/// memory, the rest are read from the neuron bundle into cold slots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NeuronCacheState {
    pub hot_per_layer: usize,
    pub n_ff: usize,
    pub cold_slots: usize,
    /// Bytes of both regions.
    pub bytes: u64,
}

/// Bytes as whole MiB, rounded up (a minimum that works when typed back in).
pub fn mib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

impl BudgetState {
    /// The smallest budget the engine takes now, in whole MiB (rounded up).
    pub fn min_mib(&self) -> u64 {
        mib_ceil(self.fixed)
    }

    /// One line on how the budget is used.
    pub fn describe(&self) -> String {
        use sparsetop_engine::offload::budget::mib;
        let Some(b) = self.budget else {
            return "no memory budget: the whole model is in memory".into();
        };
        let how = match &self.neurons {
            Some(n) => format!(
                "neuron cache: the hottest {} of {} neurons per layer in memory, {} cold slots for the rest, read from the neuron bundle ({})",
                n.hot_per_layer,
                n.n_ff,
                n.cold_slots,
                mib(n.bytes)
            ),
            None => format!(
                "{} of {} FFN layers resident, the rest streamed from the model file",
                self.resident_layers, self.n_layer
            ),
        };
        format!(
            "memory budget {}: fixed region {}; {how}",
            mib(b),
            mib(self.fixed)
        )
    }
}

/// One item for the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Feed {
    Chat(ChatEvent),
    Telemetry(Event),
    Host(HostSample),
    /// A replay reached the end of its file.
    ReplayEnd,
}
