//! `cargo xtask bench-proxy`: the Service proxy's rule programming with 1,000 Services × 10
//! endpoints, inside a fresh network namespace this command creates (run as root):
//! - the initial full sync;
//! - one change at a time: an endpoint added, an endpoint removed, a Service (with 10
//!   endpoints) added.
//!
//! Each figure is split into the pure work (objects → model → ruleset → diff → script) and
//! the kernel's part (running `nft -f -`, or `iptables-restore`).

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::testing::{ready, service, slice};
use proxy::{Backend, Config, Proxier, SyncStats};
use serde_json::json;

use crate::machine;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Repetitions of each single change (the median is reported).
    #[arg(long, default_value_t = 20)]
    repeat: usize,
    /// `nftables` or `iptables`.
    #[arg(long, default_value = "nftables")]
    backend: String,
}

fn cluster_ip(i: usize) -> String {
    format!("10.96.{}.{}", i / 250, i % 250 + 1)
}

fn endpoint_ip(i: usize, e: usize) -> String {
    let n = i * 16 + e;
    format!("10.42.{}.{}", n / 250, n % 250 + 1)
}

fn web(i: usize) -> Service {
    service(&format!("svc-{i}"), &cluster_ip(i), json!({}))
}

fn endpoints(i: usize, count: usize) -> EndpointSlice {
    let ips: Vec<String> = (0..count).map(|e| endpoint_ip(i, e)).collect();
    let eps: Vec<_> = ips.iter().map(|ip| ready(ip, "node-a")).collect();
    slice(
        &format!("svc-{i}"),
        &format!("svc-{i}-abcde"),
        ("http", 8080, "TCP"),
        &eps,
    )
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Row {
    what: String,
    compute: Vec<f64>,
    apply: Vec<f64>,
    bytes: usize,
}

impl Row {
    fn new(what: &str) -> Row {
        Row {
            what: what.into(),
            compute: Vec::new(),
            apply: Vec::new(),
            bytes: 0,
        }
    }

    fn add(&mut self, s: &SyncStats) {
        self.compute.push(ms(s.compute));
        self.apply.push(ms(s.apply));
        self.bytes = s.script_bytes;
    }

    fn print(&self) {
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {} B |",
            self.what,
            median(&self.compute),
            median(&self.apply),
            median(&self.compute) + median(&self.apply),
            self.bytes
        );
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let backend = match args.backend.as_str() {
        "nftables" => Backend::Nftables,
        "iptables" => Backend::Iptables,
        other => anyhow::bail!("--backend: nftables or iptables, not {other}"),
    };
    let ns = testkit::netns::NetNs::create("benchproxy").context("a network namespace (run as root)")?;
    // The runtime's threads and the programs they start inherit the namespace.
    ns.enter()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut config = Config::new("node-a");
    config.node_ips = vec!["192.168.50.2".parse()?];
    config.cluster_cidrs = vec!["10.42.0.0/16".parse()?];
    config.backend = backend;
    let mut proxier = runtime.block_on(Proxier::new(config));

    let mut services: Vec<Service> = (0..args.services).map(web).collect();
    let mut slices: Vec<EndpointSlice> = (0..args.services).map(|i| endpoints(i, args.endpoints)).collect();

    let mut full = Row::new(&format!(
        "initial full sync ({} Services × {} endpoints)",
        args.services, args.endpoints
    ));
    full.add(&runtime.block_on(proxier.sync(&services, &slices))?);

    let mut added = Row::new("one endpoint added");
    let mut removed = Row::new("one endpoint removed");
    let mut new_service = Row::new("one Service (10 endpoints) added");
    let mut removed_service = Row::new("one Service removed");
    for r in 0..args.repeat {
        let target = (r * 37) % args.services;
        slices[target] = endpoints(target, args.endpoints + 1);
        added.add(&runtime.block_on(proxier.sync(&services, &slices))?);
        slices[target] = endpoints(target, args.endpoints);
        removed.add(&runtime.block_on(proxier.sync(&services, &slices))?);

        let extra = args.services + r;
        services.push(web(extra));
        slices.push(endpoints(extra, args.endpoints));
        new_service.add(&runtime.block_on(proxier.sync(&services, &slices))?);
        services.pop();
        slices.pop();
        removed_service.add(&runtime.block_on(proxier.sync(&services, &slices))?);
    }
    let mut resync = Row::new("nothing changed");
    for _ in 0..args.repeat {
        resync.add(&runtime.block_on(proxier.sync(&services, &slices))?);
    }

    println!("machine: {}", machine::describe());
    println!("nft: {}", machine::output("nft", &["--version"]));
    println!(
        "backend: {}; medians of {} runs for single changes",
        args.backend, args.repeat
    );
    println!();
    println!("| change | model+diff | apply | total | script |");
    println!("|---|---|---|---|---|");
    for row in [&full, &added, &removed, &new_service, &removed_service, &resync] {
        row.print();
    }
    Ok(())
}
