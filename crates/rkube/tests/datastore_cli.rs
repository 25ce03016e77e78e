//! `rkube datastore …` end to end: the real binary against a fresh SQLite store, and bad input
//! answered with one readable line and a failure exit code.

use std::process::{Command, Output};

fn rkube(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(args)
        .env_remove("RKUBE_DATASTORE_ENDPOINT")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure, got {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line of error, got: {stderr}");
    assert!(lines[0].starts_with("rkube: error: "), "{stderr}");
    lines[0].to_owned()
}

#[test]
fn status_creates_the_default_store_under_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let out = rkube(&["datastore", "status", "--data-dir", data_dir]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("backend:  sqlite"), "{text}");
    assert!(text.contains("revision: 1"), "{text}");
    assert!(dir.path().join("db/state.db").is_file());

    let missing = rkube(&[
        "datastore",
        "get",
        "/registry/pods/default/x",
        "--data-dir",
        data_dir,
    ]);
    assert!(one_error_line(&missing).contains("not found"));
    let compact = rkube(&["datastore", "compact", "--data-dir", data_dir]);
    assert!(one_error_line(&compact).contains("nothing to compact"));
}

#[test]
fn bad_datastores_get_one_readable_line() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![7u8; 8192]).unwrap();
    let cases = [
        ("mysql://db", "invalid datastore URL"),
        ("sqlite:///nonexistent-rkube-dir/state.db", "does not exist"),
        (
            &format!("sqlite://{}", garbage.display()),
            "file is not a database",
        ),
        (
            &format!("etcd://127.0.0.1:{}", testkit::free_port()),
            "cannot reach etcd",
        ),
    ];
    for (url, expected) in cases {
        let line = one_error_line(&rkube(&["datastore", "status", "--datastore-endpoint", url]));
        assert!(line.contains(expected), "{url}: {line}");
    }
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        vec![7u8; 8192],
        "the garbage file was modified"
    );
}
