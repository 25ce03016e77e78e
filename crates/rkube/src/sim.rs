//! `rkube sim`: hollow nodes. Registers N simulated nodes against an API server; they
//! heartbeat and "run" the pods bound to them as kubelets would, without containers.

use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
#[command(
    after_help = "Stopping a node (to simulate its failure): create a file named after the node in \
--stop-heartbeat-dir, e.g. `touch DIR/hollow-3`; within one tick the node stops renewing its Lease, \
posting status and handling its pods, as if its kubelet died. Remove the file to resume it.\n\n\
Pods bound to hollow nodes run until they are deleted, whatever their restartPolicy: a hollow \
container never exits. A deleted pod's containers terminate at once and the node removes it \
(grace period 0)."
)]
pub struct Args {
    /// Kubeconfig of the API server to register with.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// How many nodes to simulate.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// CPU capacity of each node.
    #[arg(long, default_value = "4")]
    cpu: String,
    /// Memory capacity of each node.
    #[arg(long, default_value = "16Gi")]
    memory: String,
    /// Pod capacity of each node.
    #[arg(long, default_value_t = 110)]
    pods: u32,
    /// Node names are this prefix followed by the node's index (from 0).
    #[arg(long, default_value = "hollow-")]
    name_prefix: String,
    /// How often each node renews its Lease and checks its status (the kubelet's 10s).
    #[arg(long, default_value = "10s", value_parser = crate::server::parse_duration)]
    heartbeat_interval: Duration,
    /// A node named by a file in this directory stops heartbeating until the file is removed.
    #[arg(long)]
    stop_heartbeat_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        sim_memory_ok(&args.memory),
        "invalid --memory {:?}: a quantity such as 16Gi",
        args.memory
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        // Hollow kubelets write as kubelets do.
        let client = clientkit::from_kubeconfig_as(&args.kubeconfig, "kubelet").await?;
        let config = ::sim::Config {
            nodes: args.nodes,
            name_prefix: args.name_prefix,
            cpu: args.cpu,
            memory: args.memory,
            pods: args.pods,
            heartbeat_interval: args.heartbeat_interval,
            stop_heartbeat_dir: args.stop_heartbeat_dir,
        };
        tokio::select! {
            result = ::sim::run(client, config) => result,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

fn sim_memory_ok(memory: &str) -> bool {
    ::sim::parse_quantity_bytes(memory).is_some()
}
