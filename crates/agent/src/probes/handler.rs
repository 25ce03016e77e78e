//! One run of a container handler, as upstream's `pkg/probe` packages run them: what it
//! targets, what it reports, and the port a handler names.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, SleepAction, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What a handler runs against: a running container and its pod's address.
#[derive(Clone)]
pub struct Target {
    pub runtime: Arc<dyn runtime::Runtime>,
    pub container_id: String,
    /// The pod's IP: httpGet and tcpSocket connect to it unless the handler names a host.
    pub pod_ip: Option<IpAddr>,
    /// Set only when the node cannot route to the pod IP (tests without CNI): connections are
    /// then made from inside the pod's network namespace. `None`: from the node, as kubelet.
    pub netns: Option<PathBuf>,
}

/// How one run ended. Outputs are the texts kubelet puts into its events
/// ("Liveness probe failed: <output>").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Healthy; the output (an exec's, an HTTP body) is not shown anywhere.
    Success(String),
    /// Healthy, with a `ProbeWarning` event (an httpGet stopped at a redirect to another host).
    Warning(String),
    /// Unhealthy.
    Failure(String),
    /// The handler could not run (no such port name, the runtime failed): upstream's probe
    /// *error*, retried, then reported as "probe errored" and the result thrown away.
    Error(String),
}

impl Outcome {
    /// Whether the run counts as a success (a warning does).
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success(_) | Outcome::Warning(_))
    }
}

/// A handler of a probe or lifecycle hook, borrowed from the pod spec.
#[derive(Clone, Copy, Debug)]
pub enum Handler<'a> {
    Exec(&'a ExecAction),
    HttpGet(&'a HTTPGetAction),
    TcpSocket(&'a TCPSocketAction),
    Grpc(&'a GRPCAction),
    /// Lifecycle hooks only.
    Sleep(&'a SleepAction),
}

impl<'a> Handler<'a> {
    /// The handler a probe sets (validation allows exactly one).
    pub fn of_probe(probe: &'a k8s_openapi::api::core::v1::Probe) -> Option<Handler<'a>> {
        if let Some(exec) = &probe.exec {
            Some(Handler::Exec(exec))
        } else if let Some(http) = &probe.http_get {
            Some(Handler::HttpGet(http))
        } else if let Some(tcp) = &probe.tcp_socket {
            Some(Handler::TcpSocket(tcp))
        } else {
            probe.grpc.as_ref().map(Handler::Grpc)
        }
    }
}

/// Who runs the handler: probes and hooks differ in their `User-Agent`, in what an HTTP
/// answer means (a hook succeeds on any answer) and in which redirects they follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Probe,
    Lifecycle,
}

/// Runs a handler once. `timeout` is the probe's `timeoutSeconds` (`None`: hooks, bounded by
/// the caller). exec: exit code 0 is success, the output is stdout then stderr (at most
/// 10 KiB); httpGet: 2xx/3xx (see `http`); tcpSocket: the connection opens; grpc: the
/// health service answers SERVING.
pub async fn run_handler(
    handler: Handler<'_>,
    purpose: Purpose,
    container: &Container,
    target: &Target,
    timeout: Option<Duration>,
) -> Outcome {
    match handler {
        Handler::Exec(exec) => {
            let command = exec.command.clone().unwrap_or_default();
            super::exec::probe(target, command, timeout).await
        }
        Handler::HttpGet(action) => super::http::probe(action, purpose, container, target, timeout).await,
        Handler::TcpSocket(action) => tcp_probe(action, container, target, timeout).await,
        Handler::Grpc(action) => super::grpc::probe(action, target, timeout).await,
        Handler::Sleep(sleep) => {
            tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
            Outcome::Success(String::new())
        }
    }
}

/// tcpSocket: success when a connection opens within the timeout (upstream's `DoTCPProbe`:
/// errors, timeouts included, are failures carrying the dial error).
async fn tcp_probe(
    action: &TCPSocketAction,
    container: &Container,
    target: &Target,
    timeout: Option<Duration>,
) -> Outcome {
    let port = match resolve_port(&action.port, container) {
        Ok(port) => port,
        Err(err) => return Outcome::Error(err),
    };
    let addr = match target_addr(action.host.as_deref(), target, port).await {
        Ok(addr) => addr,
        Err(err) => return Outcome::Failure(err),
    };
    let timeout = timeout.unwrap_or(Duration::from_secs(1));
    match super::dial::dial(addr, target.netns.as_deref(), timeout).await {
        Ok(_) => Outcome::Success(String::new()),
        Err(err) => Outcome::Failure(err),
    }
}

/// The address a handler connects to: its `host` or the pod IP.
pub(crate) async fn target_addr(
    host: Option<&str>,
    target: &Target,
    port: u16,
) -> Result<SocketAddr, String> {
    match host.filter(|h| !h.is_empty()) {
        Some(host) => resolve(host, port).await,
        None => Ok(SocketAddr::new(pod_ip(target, port)?, port)),
    }
}

pub(crate) fn pod_ip(target: &Target, port: u16) -> Result<IpAddr, String> {
    target
        .pod_ip
        .ok_or_else(|| format!("dial tcp :{port}: connect: the pod has no IP"))
}

/// An IP address as it is, a name through the node's resolver (its first IPv4 address, else
/// its first), with Go's wording when it has none.
pub(crate) async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map(Iterator::collect)
        .unwrap_or_default();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("dial tcp: lookup {bare}: no such host"))
}

/// A handler's port: a number, a name from the container's ports, or a number written as a
/// string; 1–65535 (upstream's `ResolveContainerPort` and its errors).
pub(crate) fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let named = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| i64::from(p.container_port));
            match named {
                Some(n) => n,
                None => name.parse::<i64>().map_err(|_| {
                    format!("strconv.Atoi: parsing {}: invalid syntax", super::go_quote(name))
                })?,
            }
        }
    };
    if (1..65536).contains(&number) {
        Ok(number as u16)
    } else {
        Err(format!("invalid port number: {number}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    fn container() -> Container {
        Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn ports_by_number_name_or_numeric_string() {
        let c = container();
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(resolve_port(&IntOrString::String("http".into()), &c), Ok(8080));
        assert_eq!(resolve_port(&IntOrString::String("81".into()), &c), Ok(81));
        assert_eq!(
            resolve_port(&IntOrString::String("nope".into()), &c),
            Err("strconv.Atoi: parsing \"nope\": invalid syntax".into())
        );
        assert_eq!(
            resolve_port(&IntOrString::Int(0), &c),
            Err("invalid port number: 0".into())
        );
        assert_eq!(
            resolve_port(&IntOrString::Int(70000), &c),
            Err("invalid port number: 70000".into())
        );
    }
}
