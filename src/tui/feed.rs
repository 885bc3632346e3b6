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
