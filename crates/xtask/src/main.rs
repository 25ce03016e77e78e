//! Project tasks that are commands, not tests: `cargo xtask bench-store`, `bench-api`, `bench-rss`,
//! `bench-scheduler`, `bench-pods`, `bench-network`, `bench-dns`, `bench-proxy`, `fuzz`, and
//! `dev-cluster` (a cluster in a network namespace for trying clients by hand).

mod bench_api;
mod bench_dns;
mod bench_network;
mod bench_pods;
mod bench_proxy;
mod bench_rss;
mod bench_scheduler;
mod bench_store;
mod dev_cluster;
mod fuzz;
mod machine;
mod rkube_process;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "rkube project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
#[allow(clippy::enum_variant_names)] // the commands are bench-store, bench-api, bench-rss
enum Task {
    /// Store backends side by side: SQLite vs a Debian etcd started here, equal durability.
    BenchStore(bench_store::Args),
    /// The API server over each backend, driven by kube-rs: create/get/list throughput and
    /// latency at 1, 16 and 256 clients, paced creates, and watch delivery to many watchers.
    BenchApi(bench_api::Args),
    /// Memory of a real `rkube server` process: idle, and with 10,000 / 100,000 pods stored.
    BenchRss(bench_rss::Args),
    /// Scheduler throughput on hollow nodes (upstream's scheduler_perf SchedulingBasic) and a
    /// large Deployment's time to Available, on a real server and `rkube sim`.
    BenchScheduler(bench_scheduler::Args),
    /// Pod startup latency with real containers, server start → node Ready, agent idle RSS.
    BenchPods(bench_pods::Args),
    /// Pod network and Service data path: TCP throughput pod → pod IP vs pod → ClusterIP,
    /// same node and across nodes, and cluster DNS queries/s from a pod, on two netns nodes.
    BenchNetwork(bench_network::Args),
    /// The cluster DNS server with 1,000 Services: queries/s and latency from N UDP clients.
    BenchDns(bench_dns::Args),
    /// The Service proxy: programming 1,000 Services × 10 endpoints (full sync) and single
    /// changes, pure work and `nft` apply separately, in a network namespace made here.
    BenchProxy(bench_proxy::Args),
    /// A single-node cluster in a network namespace of its own, with the test images in a
    /// local mirror, for trying clients by hand; stops on Ctrl-C.
    DevCluster(dev_cluster::Args),
    /// Mutation fuzzing of request decoding, patching and validation (`apiserver::fuzz`):
    /// any panic is a bug; the input is written to target/fuzz-crashes/.
    Fuzz(fuzz::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::BenchStore(args) => bench_store::run(args),
        Task::BenchApi(args) => bench_api::run(args),
        Task::BenchRss(args) => bench_rss::run(args),
        Task::BenchScheduler(args) => bench_scheduler::run(args),
        Task::BenchPods(args) => bench_pods::run(args),
        Task::DevCluster(args) => dev_cluster::run(args),
        Task::BenchNetwork(args) => bench_network::run(args),
        Task::BenchDns(args) => bench_dns::run(args),
        Task::BenchProxy(args) => bench_proxy::run(args),
        Task::Fuzz(args) => fuzz::run(args),
    }
}
