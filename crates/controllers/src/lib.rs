//! kube-controller-manager's role: the control loops that drive the cluster towards what its
//! objects ask for. Every controller is a client of the API server over HTTP (kube-rs watchers
//! and API calls), exactly as upstream's are; none reads the store.
//!
//! One module per controller; [`CONTROLLERS`] is the registry of name → start function, and
//! [`run`] starts the enabled ones. `rkube server` runs them under leader election on the
//! `kube-system/kube-controller-manager` Lease.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

pub mod controller_ref;
pub mod deployment;
pub mod discovery;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslice_mirroring;
pub mod expectations;
pub mod garbage_collector;
pub mod informer;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod pod_control;
pub mod pod_endpoints;
pub mod pod_ranking;
pub mod podgc;
mod pods_by_node;
pub mod replicaset;
pub mod root_ca_publisher;
pub mod service_lb;
pub mod serviceaccount;
pub mod taint_eviction;
pub mod workqueue;

/// What the controllers are configured with (kube-controller-manager's flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// Which controllers run: upstream's `--controllers` list (`*` = all, `name`, `-name`).
    pub controllers: Vec<String>,
    /// Pod address range that node IPAM splits into per-node `spec.podCIDR`s (`--cluster-cidr`).
    pub cluster_cidr: String,
    /// Prefix length of each node's pod range for IPv4 (`--node-cidr-mask-size-ipv4`, 24).
    pub node_cidr_mask_size_ipv4: u8,
    /// Prefix length of each node's pod range for IPv6 (`--node-cidr-mask-size-ipv6`, 64).
    pub node_cidr_mask_size_ipv6: u8,
    /// How often node health is checked (`--node-monitor-period`, 5 s).
    pub node_monitor_period: Duration,
    /// How long a node may go without a heartbeat before it is NotReady/Unknown
    /// (`--node-monitor-grace-period`, 50 s since 1.32).
    pub node_monitor_grace_period: Duration,
    /// The same allowance for a node that has never posted status (`--node-startup-grace-period`, 60 s).
    pub node_startup_grace_period: Duration,
    /// Terminated pods above this count are deleted, oldest first
    /// (`--terminated-pod-gc-threshold`, 12500).
    pub terminated_pod_gc_threshold: usize,
    /// The cluster CA (PEM) the root CA publisher puts in every namespace's `kube-root-ca.crt`
    /// (`--root-ca-file`); without it that controller does nothing, as upstream's.
    pub root_ca: Option<String>,
    /// At most this many endpoints go in one EndpointSlice (`--max-endpoints-per-slice`, 100).
    pub max_endpoints_per_slice: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            controllers: vec!["*".to_owned()],
            cluster_cidr: "10.42.0.0/16".to_owned(),
            node_cidr_mask_size_ipv4: 24,
            node_cidr_mask_size_ipv6: 64,
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            terminated_pod_gc_threshold: 12500,
            root_ca: None,
            max_endpoints_per_slice: 100,
        }
    }
}

/// What every controller gets: a client, the configuration and the shared watches.
#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    pub config: Arc<Config>,
    /// One pod watch for the controllers that follow pods (ReplicaSet, ReplicationController,
    /// Deployment, pod GC, node lifecycle, taint eviction, Endpoints, EndpointSlice) instead of
    /// one each.
    pub pods: Arc<informer::Shared<k8s_openapi::api::core::v1::Pod>>,
    /// One Service watch for the Endpoints, EndpointSlice, mirroring and service-lb controllers.
    pub services: Arc<informer::Shared<k8s_openapi::api::core::v1::Service>>,
}

impl Context {
    pub fn new(client: kube::Client, config: Config) -> Context {
        Context {
            pods: Arc::new(informer::Shared::new(kube::Api::all(client.clone()))),
            services: Arc::new(informer::Shared::new(kube::Api::all(client.clone()))),
            client,
            config: Arc::new(config),
        }
    }
}

/// A controller's entry point: runs until the process stops (or fails).
pub type StartFn = fn(Context) -> BoxFuture<'static, anyhow::Result<()>>;

/// The registry: upstream's controller names (as `--controllers` takes them) → start functions.
pub const CONTROLLERS: &[(&str, StartFn)] = &[
    ("garbage-collector-controller", garbage_collector::start),
    ("namespace-controller", namespace::start),
    ("serviceaccount-controller", serviceaccount::start),
    (
        "root-ca-certificate-publisher-controller",
        root_ca_publisher::start,
    ),
    ("pod-garbage-collector-controller", podgc::start),
    ("node-ipam-controller", node_ipam::start),
    ("node-lifecycle-controller", node_lifecycle::start),
    ("taint-eviction-controller", taint_eviction::start),
    ("deployment-controller", deployment::start),
    ("replicaset-controller", replicaset::start_replica_sets),
    (
        "replicationcontroller-controller",
        replicaset::start_replication_controllers,
    ),
    ("endpoints-controller", endpoints::start),
    ("endpointslice-controller", endpointslice::start),
    (
        "endpointslice-mirroring-controller",
        endpointslice_mirroring::start,
    ),
    ("service-lb-controller", service_lb::start),
];

/// Whether `name` is enabled by a `--controllers` list, as upstream reads it: `-name` disables,
/// `name` enables, `*` enables the rest. Names match with or without the `-controller` suffix.
pub fn enabled(name: &str, list: &[String]) -> bool {
    let short = name.strip_suffix("-controller").unwrap_or(name);
    // Upstream's one alias that is not the name without `-controller`.
    let alias = (name == "root-ca-certificate-publisher-controller").then_some("root-ca-cert-publisher");
    let is = |entry: &str| entry == name || entry == short || Some(entry) == alias;
    if list.iter().any(|e| e.strip_prefix('-').is_some_and(is)) {
        return false;
    }
    list.iter().any(|e| is(e)) || list.iter().any(|e| e == "*")
}

/// Starts every enabled controller and runs them for good: a failing controller is restarted
/// after a pause rather than taking the others down. (Stopping is by dropping the future, which
/// leader election does when the lease is lost.)
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (name, start) in CONTROLLERS {
        if !enabled(name, &ctx.config.controllers) {
            continue;
        }
        let ctx = ctx.clone();
        let (name, start) = (*name, *start);
        tasks.spawn(async move {
            loop {
                // Its own task, so that a panic (a bug) restarts the controller as an error does.
                match tokio::spawn(start(ctx.clone())).await {
                    Ok(Ok(())) => return,
                    Ok(Err(err)) => {
                        tracing::error!(controller = name, "controller failed: {err:#}; restarting")
                    }
                    Err(err) => tracing::error!(controller = name, "controller panicked: {err}; restarting"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // Every controller returned (or none is enabled): keep holding the lease regardless.
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::enabled;

    #[test]
    fn controllers_flag_as_upstream() {
        let list = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(enabled("deployment-controller", &list(&["*"])));
        assert!(!enabled("deployment-controller", &list(&["*", "-deployment"])));
        assert!(!enabled(
            "deployment-controller",
            &list(&["*", "-deployment-controller"])
        ));
        assert!(enabled("deployment-controller", &list(&["deployment"])));
        assert!(!enabled("deployment-controller", &list(&["replicaset"])));
        let publisher = "root-ca-certificate-publisher-controller";
        assert!(!enabled(publisher, &list(&["*", "-root-ca-cert-publisher"])));
        assert!(enabled(publisher, &list(&["root-ca-certificate-publisher"])));
    }
}
