//! The etcd harness starts, survives a SIGKILL + restart on the same ports and data, and cleans up.

use std::net::TcpStream;
use std::time::Instant;

use testkit::etcd::EtcdProcess;

#[test]
fn starts_kills_and_restarts_on_the_same_ports() {
    let started = Instant::now();
    let mut etcd = EtcdProcess::start().unwrap();
    eprintln!("etcd started in {:?}", started.elapsed());
    let endpoint = etcd.endpoint();
    assert!(endpoint.starts_with("http://127.0.0.1:"));
    assert_eq!(etcd.url(), endpoint.replace("http://", "etcd://"));
    let addr = endpoint.trim_start_matches("http://").to_owned();
    let first_pid = etcd.pid().unwrap();
    TcpStream::connect(&addr).unwrap();

    etcd.kill().unwrap();
    assert_eq!(etcd.pid(), None);
    assert!(TcpStream::connect(&addr).is_err(), "killed etcd still listens");
    assert!(
        !std::path::Path::new(&format!("/proc/{first_pid}")).exists(),
        "etcd was not reaped"
    );

    let restarted = Instant::now();
    etcd.restart().unwrap();
    eprintln!("etcd restarted in {:?}", restarted.elapsed());
    assert_eq!(etcd.endpoint(), endpoint);
    assert_ne!(etcd.pid().unwrap(), first_pid);
    TcpStream::connect(&addr).unwrap();
    assert!(etcd.data_dir().join("member").is_dir());

    let pid = etcd.pid().unwrap();
    let log = etcd.log_path().to_owned();
    assert!(log.exists());
    drop(etcd);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "drop did not stop etcd"
    );
    assert!(!log.exists(), "drop did not remove the temporary directory");
}

#[test]
fn start_in_recovers_an_existing_data_dir_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = EtcdProcess::start_in(dir.path().join("etcd")).unwrap();
    drop(etcd);
    assert!(
        dir.path().join("etcd/member").is_dir(),
        "a given data dir outlives the process"
    );
    let again = EtcdProcess::start_in(dir.path().join("etcd")).unwrap();
    drop(again);

    // A data dir that is a file: etcd exits, and the error quotes its log.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = format!("{:#}", EtcdProcess::start_in(&file).unwrap_err());
    assert!(err.contains("etcd exited"), "{err}");
    assert!(err.contains("tail of"), "{err}");
}

#[test]
fn free_ports_are_distinct_and_bindable() {
    let [a, b] = testkit::free_ports::<2>();
    assert_ne!(a, b);
    std::net::TcpListener::bind(("127.0.0.1", testkit::free_port())).unwrap();
}
