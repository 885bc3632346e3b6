//! One module per subcommand.

pub mod bench;
pub mod calibrate;
pub mod chat;
pub mod common;
pub mod convert;
pub mod ffn_report;
pub mod inspect;
pub mod perplexity;
pub mod progress;
pub mod pull;
pub mod run;
pub mod tokenize;
