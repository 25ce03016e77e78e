//! The exec handler: a command in the running container through [`runtime::Runtime::exec`],
//! as CRI's `ExecSync`: stdout and stderr collected (stdout first, as kubelet appends them),
//! an optional timeout after which the process is killed.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use super::{Outcome, Target, go_quote};

/// How much output a probe keeps (upstream's `maxReadLength`, 10 KiB).
const MAX_OUTPUT: usize = 10 * 1024;

/// How an exec ended.
#[derive(Debug)]
pub(crate) enum End {
    Exited(i32),
    TimedOut,
    /// The runtime could not run it (container gone, runc failed to start).
    Failed(String),
}

#[derive(Debug)]
pub(crate) struct Run {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub end: End,
}

impl Run {
    /// stdout then stderr, at most [`MAX_OUTPUT`] bytes, as kubelet's `RunInContainer`.
    pub fn output(&self) -> String {
        let mut all = self.stdout.clone();
        all.extend_from_slice(&self.stderr);
        all.truncate(MAX_OUTPUT);
        String::from_utf8_lossy(&all).into_owned()
    }
}

/// An exec probe (upstream's `pkg/probe/exec`): exit 0 succeeds, another code fails with the
/// output; a timeout fails with CRI's `command "…" timed out`.
pub(crate) async fn probe(target: &Target, command: Vec<String>, timeout: Option<Duration>) -> Outcome {
    let joined = command.join(" ");
    let run = run(target, command, timeout).await;
    match run.end {
        End::Exited(0) => Outcome::Success(run.output()),
        End::Exited(_) => Outcome::Failure(run.output()),
        End::TimedOut => Outcome::Failure(format!("command {} timed out", go_quote(&joined))),
        End::Failed(err) => Outcome::Error(err),
    }
}

/// Runs the command to its end (or the timeout) on a blocking thread.
pub(crate) async fn run(target: &Target, command: Vec<String>, timeout: Option<Duration>) -> Run {
    let runtime = target.runtime.clone();
    let id = target.container_id.clone();
    tokio::task::spawn_blocking(move || run_blocking(&*runtime, &id, command, timeout))
        .await
        .unwrap_or_else(|e| Run {
            stdout: Vec::new(),
            stderr: Vec::new(),
            end: End::Failed(format!("exec: {e}")),
        })
}

fn run_blocking(
    runtime: &dyn runtime::Runtime,
    id: &str,
    command: Vec<String>,
    timeout: Option<Duration>,
) -> Run {
    let failed = |message: String| Run {
        stdout: Vec::new(),
        stderr: Vec::new(),
        end: End::Failed(message),
    };
    let config = runtime::ExecConfig {
        command,
        ..Default::default()
    };
    let mut process = match runtime.exec(id, &config) {
        Ok(process) => process,
        Err(err) => return failed(err.to_string()),
    };
    let child = &mut process.child;
    drop(child.stdin.take()); // the command reads EOF
    let stdout = child.stdout.take().map(read_in_background);
    let stderr = child.stderr.take().map(read_in_background);
    let deadline = timeout.map(|t| Instant::now() + t);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(err) => return failed(format!("exec: wait: {err}")),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            kill_tree(child.id() as i32);
            let _ = child.wait();
            // The readers end when the killed processes' pipes close; nobody waits for them.
            return Run {
                stdout: Vec::new(),
                stderr: Vec::new(),
                end: End::TimedOut,
            };
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let collect = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
        reader.and_then(|r| r.join().ok()).unwrap_or_default()
    };
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Run {
        stdout: collect(stdout),
        stderr: collect(stderr),
        end: End::Exited(code),
    }
}

/// Reads a pipe to its end on a thread, keeping the first [`MAX_OUTPUT`] bytes (and draining
/// the rest, so the writer never blocks).
fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        kept
    })
}

/// SIGKILLs a process and all its descendants. `runc exec` cannot pass SIGKILL on to the
/// command it runs (its child, reparented to it as subreaper), so the command is killed
/// directly, as containerd kills a timed-out exec.
fn kill_tree(pid: i32) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        all.extend(children(all[i]));
        i += 1;
    }
    for pid in all.into_iter().rev() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}
