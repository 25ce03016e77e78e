//! Project tasks that are commands, not tests: `cargo xtask bench-store` (more to come).

mod bench_store;
mod machine;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "rkube project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Store backends side by side: SQLite vs a Debian etcd started here, equal durability.
    BenchStore(bench_store::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::BenchStore(args) => bench_store::run(args),
    }
}
