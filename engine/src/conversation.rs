//! A multi-turn chat: the messages so far, rendered through the model's template into prompt
//! tokens, dropping the oldest turns when the conversation outgrows the context.

use crate::chat::ChatMessage;
use crate::error::{Error, Result};
use crate::model::Model;

/// The messages of one chat.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    /// System message; `None` lets the template use its own default.
    pub system: Option<String>,
    /// User and assistant messages, oldest first.
    pub messages: Vec<ChatMessage>,
}

/// The prompt for the next answer.
#[derive(Debug, Clone)]
pub struct ChatPrompt {
    pub ids: Vec<u32>,
    /// Messages dropped from the start to make room (0 when everything fits).
    pub dropped: usize,
}

impl Conversation {
    pub fn new(system: Option<String>) -> Self {
        Conversation {
            system,
            messages: Vec::new(),
        }
    }

    pub fn push(&mut self, role: &str, content: &str) {
        self.messages.push(ChatMessage {
            role: role.to_string(),
            content: content.to_string(),
        });
    }

    /// Renders the whole conversation, ending with the assistant's turn opened, and tokenizes it.
    /// While it leaves fewer than `reserve` tokens free in `n_ctx`, the oldest messages are
    /// dropped (a user message with the answer that followed it); the latest user message always
    /// stays, and if it alone does not fit the result is an error.
    pub fn prompt(&mut self, model: &Model, n_ctx: usize, reserve: usize) -> Result<ChatPrompt> {
        let mut dropped = 0;
        loop {
            let mut msgs = Vec::with_capacity(self.messages.len() + 1);
            if let Some(s) = &self.system {
                msgs.push(ChatMessage {
                    role: "system".into(),
                    content: s.clone(),
                });
            }
            msgs.extend(self.messages.iter().cloned());
            let text = model.chat_template.render(&msgs, true)?;
            let ids = model.tokenizer.encode(&text, true, true)?;
            if ids.len() + reserve <= n_ctx {
                return Ok(ChatPrompt { ids, dropped });
            }
            if self.messages.len() <= 1 {
                return Err(Error::Context(format!(
                    "the message takes {} tokens, but the context holds {n_ctx} and {reserve} are kept free for the answer: shorten it or raise -c",
                    ids.len()
                )));
            }
            // Drop the oldest message and, if it was a question, the answer that followed.
            let first_role = self.messages.remove(0).role;
            dropped += 1;
            if first_role == "user"
                && self.messages.len() > 1
                && self.messages[0].role == "assistant"
            {
                self.messages.remove(0);
                dropped += 1;
            }
        }
    }
}
