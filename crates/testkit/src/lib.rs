//! Test harnesses: real child processes (etcd, a docker registry, the cluster later) on free
//! loopback ports.
//!
//! Tests run in parallel on shared machines, so every harness binds only `127.0.0.1`, picks its
//! ports at run time, keeps its files in a temporary directory, and stops exactly the processes it
//! started, by PID (never by name).

pub mod etcd;
pub mod netns;
pub mod registry;

use std::net::{Ipv4Addr, TcpListener};

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is released before returning, so another process may grab it before the caller binds
/// it; callers that start a server on it must be ready to retry with a fresh port.
///
/// Panics when no loopback port can be bound (the machine, not the test, is broken).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free ports on 127.0.0.1 (held together while picking, so they differ).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .expect("local address of a bound socket")
            .port()
    })
}

/// A test image `scripts/build-test-images` wrote into `target/test-images` (e.g.
/// `busybox-oci.tar`, `busybox-docker.tar`, `nginx-oci.tar`, `python-oci.tar`); fails the test
/// with what to run when it is missing.
pub fn test_image(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-images")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-test-images",
        path.display()
    );
    path
}
