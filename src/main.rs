//! sparsetop: chat with a language model on your CPU while live panels show what the inference
//! engine is doing.

// `println!`/`eprintln!` panic when the write fails: write through `output` instead.
#![cfg_attr(not(test), warn(clippy::print_stdout, clippy::print_stderr))]

#[macro_use]
mod output;
mod cli;
mod commands;
mod model_path;
mod tui;
mod value_parsers;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        None => tui::chat(&cli::ChatArgs::default_args()),
        Some(cli::Command::Chat(a)) => tui::chat(&a),
        Some(cli::Command::Replay(a)) => tui::replay(&a),
        Some(cli::Command::Run(a)) => commands::run::run(&a),
        Some(cli::Command::Tokenize(a)) => commands::tokenize::run(&a),
        Some(cli::Command::Perplexity(a)) => commands::perplexity::run(&a),
        Some(cli::Command::Inspect(a)) => commands::inspect::run(&a),
        Some(cli::Command::Calibrate(a)) => commands::calibrate::run(&a),
        Some(cli::Command::Convert(a)) => commands::convert::run(&a),
        Some(cli::Command::Bench(a)) => commands::bench::run(&a),
        Some(cli::Command::Pull(a)) => commands::pull::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(t) = e.downcast_ref::<tui::signals::Terminated>() {
                // The UI gave the terminal back, stopped the engine and flushed its recording:
                // now end as the signal would have.
                tui::signals::exit_as_killed(t.0);
            }
            // `{:#}` prints the cause chain on one line; user errors never show a backtrace.
            diag!("sparsetop: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
