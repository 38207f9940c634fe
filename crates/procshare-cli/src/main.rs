//! The `procshare` command: the book's examples, benchmarks, and shared-memory housekeeping.

mod demo;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "procshare", version, about = "procshare: Python's multiprocessing for Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the book's examples end to end (all of them when no name is given).
    Demo {
        #[arg(value_enum, default_value = "all")]
        which: demo::Which,
    },
}

fn main() -> ExitCode {
    procshare::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { which } => demo::run(which),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("procshare: {e}");
            ExitCode::FAILURE
        }
    }
}
