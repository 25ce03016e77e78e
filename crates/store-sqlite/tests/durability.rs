//! Crash durability: a child process writes through the SQLite backend from many concurrent
//! tasks and prints every acknowledged write; it is SIGKILLed mid-stream. After reopening, every
//! acknowledged write is present with its revision, and the revisions in the store have no gaps
//! and no duplicates.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use store::{KeyRange, RangeRequest, Store};
use store_sqlite::SqliteStore;

const CHILD_ENV: &str = "RKUBE_DURABILITY_CHILD_DB";
const WRITERS: usize = 32;

/// Entry point of the child process (this test binary re-executed with `CHILD_ENV` set);
/// returns at once in a normal test run.
#[test]
fn durability_child_process_entry() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = SqliteStore::open(&path).unwrap();
        let (acks, printed) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for line in printed {
                writeln!(out, "{line}").unwrap();
                out.flush().unwrap();
            }
        });
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                let acks = acks.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let key = format!("/durability/{w:02}/{i:08}");
                        let rev = store
                            .put(&key, bytes::Bytes::from(key.clone()), None)
                            .await
                            .unwrap();
                        acks.send(format!("ack {key} {rev}")).unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn sqlite_acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability_child_process_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Read acknowledgements until enough have arrived, then kill the writer mid-stream.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < 20_000 && Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
            record(&mut acked, &line);
        }
    }
    child.kill().unwrap(); // SIGKILL, to our own child by PID
    child.wait().unwrap();
    reader.join().unwrap();
    // Acknowledgements printed before the kill are still in the pipe.
    for line in lines.try_iter() {
        record(&mut acked, &line);
    }
    assert!(
        acked.len() >= 20_000,
        "the writer acknowledged only {} writes in time",
        acked.len()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&db).unwrap();
        let all = store
            .range(RangeRequest::new(KeyRange::prefix("/durability/")))
            .await
            .unwrap();
        let stored: BTreeMap<&str, i64> = all
            .kvs
            .iter()
            .map(|kv| (kv.key.as_str(), kv.mod_revision))
            .collect();
        for (key, rev) in &acked {
            assert_eq!(
                stored.get(key.as_str()),
                Some(rev),
                "acknowledged write {key}@{rev} lost"
            );
        }
        // Every key was written once, so the revisions are exactly 2..=current.
        let mut revisions: Vec<i64> = stored.values().copied().collect();
        revisions.sort_unstable();
        let current = store.current_revision().await.unwrap();
        assert_eq!(
            revisions,
            (2..=current).collect::<Vec<_>>(),
            "gaps or duplicates in revisions"
        );
        // And the store goes on from there.
        assert_eq!(
            store.put("/after-crash", "x".into(), None).await.unwrap(),
            current + 1
        );
        eprintln!(
            "{} acknowledged, {} stored, revision {current}",
            acked.len(),
            stored.len()
        );
    });
}

fn record(acked: &mut BTreeMap<String, i64>, line: &str) {
    if let Some(rest) = line.strip_prefix("ack ")
        && let Some((key, rev)) = rest.rsplit_once(' ')
    {
        acked.insert(key.to_owned(), rev.parse().unwrap());
    }
}
