//! TCP connects for probes, with errors worded as Go's `net.Dial` (`dial tcp 10.1.0.5:80:
//! connect: connection refused`, `… i/o timeout`), which upstream's probe outputs carry.
//!
//! From the node, a pod IP is routed (via the CNI bridge). A target may instead name the pod's
//! network namespace: the socket is then made inside it, on a short-lived thread of its own
//! (a namespace switch must never leak into tokio's pooled threads).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpStream;

/// Connects to `addr` within `timeout`, from the node's netns or from inside `netns`.
pub(crate) async fn dial(
    addr: SocketAddr,
    netns: Option<&Path>,
    timeout: Duration,
) -> Result<TcpStream, String> {
    if timeout.is_zero() {
        return Err(format!("dial tcp {addr}: i/o timeout"));
    }
    let Some(netns) = netns else {
        return match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(err)) => Err(dial_error(addr, &err)),
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
        };
    };
    let netns: PathBuf = netns.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("probe-dial".into())
        .spawn(move || {
            let _ = tx.send(connect_in_netns(&netns, addr, timeout));
        })
        .map_err(|e| format!("dial tcp {addr}: {e}"))?;
    let stream = rx
        .await
        .map_err(|_| format!("dial tcp {addr}: the connecting thread died"))??;
    TcpStream::from_std(stream).map_err(|e| dial_error(addr, &e))
}

/// Runs on its own thread, which ends right after: enters the netns, connects.
fn connect_in_netns(
    netns: &Path,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<std::net::TcpStream, String> {
    let ns =
        std::fs::File::open(netns).map_err(|e| format!("dial tcp {addr}: open {}: {e}", netns.display()))?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!(
            "dial tcp {addr}: setns {}: {}",
            netns.display(),
            go_errno(e as i32)
        )
    })?;
    let stream = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| dial_error(addr, &e))?;
    stream.set_nonblocking(true).map_err(|e| dial_error(addr, &e))?;
    Ok(stream)
}

fn dial_error(addr: SocketAddr, err: &std::io::Error) -> String {
    if err.kind() == std::io::ErrorKind::TimedOut && err.raw_os_error().is_none() {
        return format!("dial tcp {addr}: i/o timeout");
    }
    match err.raw_os_error() {
        Some(code) => format!("dial tcp {addr}: connect: {}", go_errno(code)),
        None => format!("dial tcp {addr}: {err}"),
    }
}

/// An errno as Go's `syscall.Errno.Error()` prints it: the C library's text, first letter
/// lowercased ("connection refused", "no route to host").
pub(crate) fn go_errno(code: i32) -> String {
    let text = nix::errno::Errno::from_raw(code).desc();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("errno {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_texts_as_go() {
        assert_eq!(go_errno(111), "connection refused");
        assert_eq!(go_errno(113), "no route to host");
        assert_eq!(go_errno(101), "network is unreachable");
    }

    #[tokio::test]
    async fn refused_is_worded_as_go() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = dial(addr, None, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(err, format!("dial tcp {addr}: connect: connection refused"));
    }
}
