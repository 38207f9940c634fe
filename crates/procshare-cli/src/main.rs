//! The `procshare` command: the book's examples, benchmarks, and shared-memory housekeeping.

mod bench;
mod bench_redis;
mod demo;
mod shm_cmd;
mod torture;

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
        /// The Redis server for `demo redis` (default: start a private redis-server).
        #[arg(long)]
        url: Option<String>,
    },
    /// Measure procshare against baselines run at the same time, as ratios.
    Bench(bench::Args),
    /// (internal) a plain OS-pipe peer for `bench`.
    #[command(name = "__bench-child", hide = true)]
    BenchChild { mode: String, size: usize },
    /// Show or clean up the named shared-memory segments procshare created.
    Shm {
        #[command(subcommand)]
        cmd: shm_cmd::ShmCommand,
    },
    /// Random kills and stops while work flows through every structure; checks the invariants.
    Torture(torture::Args),
}

fn main() -> ExitCode {
    procshare::init();
    // procspawn's pool (a `bench` peer) re-runs this binary too; in its child this runs the task.
    #[cfg(feature = "peers")]
    procspawn::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { which: demo::Which::Redis, url } => demo::redis::run(url.as_deref()),
        Command::Demo { which, .. } => demo::run(which),
        Command::Shm { cmd } => shm_cmd::run(cmd),
        Command::Bench(args) => bench::run(args),
        Command::Torture(args) => torture::run(args),
        Command::BenchChild { mode, size } => {
            bench::child(&mode, size);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("procshare: {e}");
            ExitCode::FAILURE
        }
    }
}
