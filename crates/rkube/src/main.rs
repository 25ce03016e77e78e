//! `rkube`: one binary, one subcommand per role: `server` (the control plane) and the
//! `datastore` and `image` tools, `agent` (a node joining a server) and `sim` (hollow nodes).

mod addons;
mod agent;
mod datastore;
mod image;
mod server;
mod sim;

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: under load the control plane spent about a fifth of its
/// CPU in glibc's allocator (small JSON values allocated and freed across threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rkube",
    version,
    about = "A Kubernetes-compatible container orchestrator in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: datastore and Kubernetes API server.
    Server(Box<server::Args>),
    /// Run a node agent that joins a server with its join token.
    Agent(Box<agent::Args>),
    /// Inspect and maintain the datastore (SQLite file or etcd cluster).
    Datastore(datastore::Args),
    /// Manage the node's images (import archives, pull, list).
    Image(image::Args),
    /// Simulate nodes (hollow kubelets) against an API server, for tests and benchmarks.
    Sim(sim::Args),
    /// Supervise one container: run it, log its output, record its exit (started by the node's
    /// container runtime, the `runtime` crate; not for interactive use).
    #[command(hide = true)]
    Shim { container_dir: std::path::PathBuf },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RKUBE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server::run(*args),
        Command::Agent(args) => agent::run(*args),
        Command::Datastore(args) => datastore::run(args),
        Command::Image(args) => image::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Shim { container_dir } => {
            return ExitCode::from(runtime::shim::run(&container_dir).clamp(0, 255) as u8);
        }
        Command::Version => {
            println!("rkube version v{}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One readable line: the error and its causes.
            eprintln!("rkube: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
