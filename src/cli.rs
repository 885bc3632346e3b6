//! Command-line interface. Engine flags are spelled as llama.cpp spells them (`-m`, `-p`, `-n`,
//! `-t`, `-c`, `--temp`...), so people can carry their habits over.

use crate::value_parsers as vp;
use clap::{Args, Parser, Subcommand};
use sparsetop_engine::Precision;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "sparsetop",
    version,
    about = "Chat with a language model on your CPU while watching what the inference engine does",
    after_help = "With no command, `sparsetop` opens the chat with the default model (SmolLM2-135M-Instruct), downloading it first if needed."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Chat with the model in a full-screen terminal UI with live engine panels (the default command).
    Chat(ChatArgs),
    /// Play back a recording made with `--record`: panels and chat, no model needed.
    Replay(ReplayArgs),
    /// Generate text from a prompt and stream it to stdout.
    Run(RunArgs),
    /// Print the token ids of a text as a JSON array.
    Tokenize(TokenizeArgs),
    /// Measure perplexity on a text file, as llama-perplexity does.
    Perplexity(PerplexityArgs),
    /// Describe a GGUF model: architecture, hyper-parameters, tokenizer, tensors.
    Inspect(InspectArgs),
    /// Learn a model's FFN activation statistics and predictor (the sparsity profile).
    Calibrate(CalibrateArgs),
    /// Write the model's FFN as a neuron-bundle file for flash offload (hot neurons first, one
    /// record per neuron, packed in 4 KiB pages).
    Convert(ConvertArgs),
    /// Measure prompt and generation speed, like llama-bench.
    Bench(BenchArgs),
    /// Download a model into the cache and verify it (default: SmolLM2-135M-Instruct Q4_1);
    /// `--list` shows the models that can be pulled.
    Pull(PullArgs),
}

/// Model selection and engine settings shared by every command that runs the model.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// GGUF model file, or the name of a model to fetch (`sparsetop pull --list`; default:
    /// SmolLM2-135M-Instruct Q4_1, downloaded on first use).
    #[arg(short = 'm', long = "model", value_name = "PATH|NAME")]
    pub model: Option<PathBuf>,
    /// Worker threads (default: one per core; at most 4 per CPU).
    #[arg(
        short = 't',
        long = "threads",
        default_value_t = 0,
        hide_default_value = true,
        value_parser = vp::threads,
        allow_hyphen_values = true
    )]
    pub threads: usize,
    /// Context size in tokens (default 4096, capped at the model's trained length).
    #[arg(
        short = 'c',
        long = "ctx-size",
        default_value_t = 0,
        hide_default_value = true
    )]
    pub ctx_size: usize,
    /// Prompt tokens evaluated per batch.
    #[arg(short = 'b', long = "batch-size", default_value_t = 256, value_parser = vp::at_least_one)]
    pub batch_size: usize,
    /// Numeric mode: `fast` (quantized activations, f16 KV cache, as llama.cpp) or `exact` (f32).
    #[arg(long, default_value = "fast", value_parser = parse_precision)]
    pub precision: Precision,
    #[command(flatten)]
    pub sparsity: SparsityArgs,
    #[command(flatten)]
    pub budget: BudgetArgs,
}

/// Memory budget (flash offload).
#[derive(Args, Debug, Clone, Default)]
pub struct BudgetArgs {
    /// Most memory the engine may hold, e.g. 64M or 1.5G: attention, embeddings and KV cache stay
    /// resident, FFN weights that do not fit are read from the model file as needed, bypassing the
    /// page cache. Too small a budget is refused with the minimum for this model and context.
    #[arg(long = "mem-budget", value_name = "SIZE", value_parser = parse_budget)]
    pub mem_budget: Option<u64>,
}

fn parse_budget(s: &str) -> Result<u64, String> {
    sparsetop_engine::offload::budget::parse_size(s).map_err(|e| e.to_string())
}

/// Activation sparsity in decode.
#[derive(Args, Debug, Clone)]
pub struct SparsityArgs {
    /// Share of FFN neurons to skip in decode, 0 (dense, exact) to 0.9. Needs a calibration
    /// profile, made automatically the first time.
    #[arg(long, default_value_t = 0.0, value_parser = vp::sparsity, allow_hyphen_values = true)]
    pub sparsity: f32,
    /// Use the low-rank predictor to skip gate rows too: on or off.
    #[arg(long, default_value = "off", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub predictor: bool,
    /// Sparsity profile (default: MODEL.sparsity next to the model, or in the cache directory).
    #[arg(long, value_name = "PATH")]
    pub profile: Option<PathBuf>,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("'{s}': use on or off")),
    }
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse()
}

/// Sampling settings, llama.cpp's defaults.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8, value_parser = vp::temp, allow_hyphen_values = true)]
    pub temp: f32,
    /// Top-k sampling (0 = off).
    #[arg(long = "top-k", default_value_t = 40)]
    pub top_k: usize,
    /// Top-p (nucleus) sampling (1.0 = off).
    #[arg(long = "top-p", default_value_t = 0.95, value_parser = vp::top_p, allow_hyphen_values = true)]
    pub top_p: f32,
    /// Min-p sampling (0.0 = off).
    #[arg(long = "min-p", default_value_t = 0.05, value_parser = vp::min_p, allow_hyphen_values = true)]
    pub min_p: f32,
    /// Penalise repeating the last --repeat-last-n tokens (1.0 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0, value_parser = vp::repeat_penalty, allow_hyphen_values = true)]
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty considers.
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Random seed (default: random).
    #[arg(short = 's', long)]
    pub seed: Option<u64>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Prompt text.
    #[arg(short = 'p', long, conflicts_with = "file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Tokens to generate (-1 = until the model ends its answer or the context is full).
    #[arg(short = 'n', long = "predict", default_value_t = -1, allow_hyphen_values = true)]
    pub n_predict: i64,
    /// Wrap the prompt as one user message with the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// System message for --chat (default: the template's own, if any).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Print one JSON object at the end instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// System message (default: the template's own, if any).
    #[arg(long)]
    pub system: Option<String>,
    /// Most tokens per answer (-1 = until the model ends its answer).
    #[arg(short = 'n', long = "predict", default_value_t = -1, allow_hyphen_values = true)]
    pub n_predict: i64,
    /// Line-mode chat on stdin/stdout instead of the full-screen UI (automatic when stdin or
    /// stdout is not a terminal).
    #[arg(long)]
    pub plain: bool,
    /// Write the telemetry stream and the chat text, with timestamps, to a JSON-lines file.
    #[arg(long, value_name = "FILE.jsonl")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub ui: UiArgs,
}

/// Settings of the full-screen UI. Long flags only: the short ones belong to the engine, as in
/// llama.cpp.
#[derive(Args, Debug, Clone)]
pub struct UiArgs {
    /// Colour theme: a name (default, dark256, light, mono) or a path to a theme TOML file.
    #[arg(long, value_name = "NAME|PATH", default_value = "default")]
    pub theme: String,
    /// Most frames drawn per second, 1 to 240 (the screen is redrawn only when something changed).
    #[arg(long, default_value_t = 30, value_parser = vp::fps)]
    pub fps: u32,
    /// Milliseconds between samples of per-core CPU and memory, 20 to 60000.
    #[arg(long = "tick-rate", value_name = "MS", default_value_t = 250, value_parser = vp::tick_rate)]
    pub tick_rate: u64,
    /// Do not capture the mouse (wheel scrolling off; the terminal's own selection works).
    #[arg(long = "no-mouse")]
    pub no_mouse: bool,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A recording made with `sparsetop chat --record FILE.jsonl`.
    #[arg(value_name = "FILE.jsonl")]
    pub file: PathBuf,
    /// Playback speed, 0.01 to 1000 (2 = twice as fast as recorded).
    #[arg(long, default_value_t = 1.0, value_parser = vp::speed, allow_hyphen_values = true)]
    pub speed: f64,
    #[command(flatten)]
    pub ui: UiArgs,
}

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// GGUF model file, or the name of a model to fetch (`sparsetop pull --list`; default: the
    /// default model).
    #[arg(short = 'm', long = "model", value_name = "PATH|NAME")]
    pub model: Option<PathBuf>,
    /// Text to tokenize.
    #[arg(
        short = 'p',
        long,
        conflicts_with = "file",
        required_unless_present = "file"
    )]
    pub prompt: Option<String>,
    /// Read the text from a file.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Treat special-token text such as <|im_start|> as plain text.
    #[arg(long)]
    pub no_parse_special: bool,
    /// Do not add BOS/EOS even when the model asks for them.
    #[arg(long)]
    pub no_bos: bool,
}

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Text file to score.
    #[arg(short = 'f', long)]
    pub file: PathBuf,
    /// Print {"ppl":..,"chunks":..} instead of a report.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// GGUF model file, or the name of a model to fetch (`sparsetop pull --list`; default: the
    /// default model).
    #[arg(short = 'm', long = "model", value_name = "PATH|NAME")]
    pub model: Option<PathBuf>,
    /// Calibration text (default: the public-domain texts shipped in assets/calibration.txt).
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Most tokens of the text to use.
    #[arg(long, default_value_t = 4096, value_parser = vp::at_least_one)]
    pub tokens: usize,
    /// Rank of the low-rank gate predictor (0 = no predictor).
    #[arg(long, default_value_t = 64)]
    pub rank: usize,
    /// Worker threads (default: one per core; at most 4 per CPU).
    #[arg(
        short = 't',
        long = "threads",
        default_value_t = 0,
        hide_default_value = true,
        value_parser = vp::threads,
        allow_hyphen_values = true
    )]
    pub threads: usize,
    /// Where to write the profile (default: MODEL.sparsity next to the model, or the cache
    /// directory when that folder is not writable).
    #[arg(short = 'o', long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// GGUF model file, or the name of a model to fetch (`sparsetop pull --list`; default: the
    /// default model).
    #[arg(short = 'm', long = "model", value_name = "PATH|NAME")]
    pub model: Option<PathBuf>,
    /// Sparsity profile whose hot-first neuron order the file follows (default: MODEL.sparsity
    /// next to the model or in the cache directory; made by calibration when there is none).
    #[arg(long, value_name = "PATH")]
    pub profile: Option<PathBuf>,
    /// Where to write the bundle (default: MODEL.bundle next to the model, or the cache directory
    /// when that folder is not writable).
    #[arg(short = 'o', long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Rewrite the bundle even when an up-to-date one exists.
    #[arg(long)]
    pub force: bool,
    /// Worker threads of the calibration, when a profile has to be made (default: one per core;
    /// at most 4 per CPU).
    #[arg(
        short = 't',
        long = "threads",
        default_value_t = 0,
        hide_default_value = true,
        value_parser = vp::threads,
        allow_hyphen_values = true
    )]
    pub threads: usize,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// GGUF model file, or the name of a model to fetch (`sparsetop pull --list`; default:
    /// SmolLM2-135M-Instruct Q4_1, downloaded on first use).
    #[arg(short = 'm', long = "model", value_name = "PATH|NAME")]
    pub model: Option<PathBuf>,
    /// Prompt tokens evaluated per batch (at least the prompt length by default).
    #[arg(short = 'b', long = "batch-size", default_value_t = 512, value_parser = vp::at_least_one)]
    pub batch_size: usize,
    /// Numeric mode: `fast` or `exact`.
    #[arg(long, default_value = "fast", value_parser = parse_precision)]
    pub precision: Precision,
    #[command(flatten)]
    pub sparsity: SparsityArgs,
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// With --sparsity: time dense decode before each sparse repetition, in the same process, and
    /// report the speed ratio of each pair (on a busy machine, pairs close in time share its load).
    #[arg(long)]
    pub vs_dense: bool,
    /// Context size (default: depth + prompt + generated tokens).
    #[arg(
        short = 'c',
        long = "ctx-size",
        default_value_t = 0,
        hide_default_value = true
    )]
    pub ctx_size: usize,
    /// Thread counts to test, comma-separated (overrides -t).
    #[arg(
        short = 't',
        long = "threads",
        value_delimiter = ',',
        default_value = "0",
        value_parser = vp::threads,
        allow_hyphen_values = true
    )]
    pub threads: Vec<usize>,
    /// Prompt length of the prompt-processing test (0 = skip it).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 128)]
    pub n_prompt: usize,
    /// Tokens of the generation test (0 = skip it).
    #[arg(short = 'n', long = "n-gen", default_value_t = 64)]
    pub n_gen: usize,
    /// Context depth: fill the KV cache with this many tokens (untimed) before each test, as
    /// llama-bench's -d does, to measure long-context speed.
    #[arg(short = 'd', long = "n-depth", default_value_t = 0)]
    pub depth: usize,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5, value_parser = vp::at_least_one)]
    pub repetitions: usize,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Model to pull, by name (see --list; default: smollm2-135m).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// List the models that can be pulled, their sizes and whether they are cached.
    #[arg(long, conflicts_with = "name")]
    pub list: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// GGUF model file, or the name of a model to fetch (`sparsetop pull --list`; default: the
    /// default model).
    pub model: Option<PathBuf>,
    /// List every tensor.
    #[arg(long)]
    pub tensors: bool,
}

impl ChatArgs {
    /// The settings of a plain `sparsetop chat`, used when no command is given.
    pub fn default_args() -> Self {
        match Cli::parse_from(["sparsetop", "chat"]).command {
            Some(Command::Chat(a)) => a,
            _ => unreachable!("`chat` parses as the chat command"),
        }
    }
}
