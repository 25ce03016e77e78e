//! What exec and attach run behind the remote command protocol: an exec'd process (its pipes
//! or terminal copied by threads of their own), or a running container's stdin, terminal size
//! and output (followed in its log, as the runtime writes it there).

use std::io::{Read, Write};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use runtime::logs::Stream;
use runtime::{ContainerState, ExecConfig, Runtime};
use tokio::sync::mpsc;

use crate::streaming::remotecommand::{Event, Io, Options, Outcome, Output, Runner};

/// How long an exec with a terminal waits for the client's first size before it starts.
const FIRST_SIZE_WAIT: Duration = Duration::from_secs(1);

/// Copies a reader into the output channel until EOF (a terminal's EIO counts as EOF).
fn pump(
    mut from: impl Read + Send + 'static,
    to: mpsc::Sender<Output>,
    stdout: bool,
    discard: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if discard {
                continue;
            }
            let data = buf[..n].to_vec();
            let out = if stdout {
                Output::Stdout(data)
            } else {
                Output::Stderr(data)
            };
            // The client may be gone; keep draining so the process never blocks on a full pipe.
            let _ = to.blocking_send(out);
        }
    })
}

/// Writes stdin bytes from a channel; dropping the writer (the channel's end) closes it.
fn stdin_writer(mut to: impl Write + Send + 'static) -> std::sync::mpsc::Sender<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        while let Ok(bytes) = rx.recv() {
            if to.write_all(&bytes).and_then(|()| to.flush()).is_err() {
                return;
            }
        }
    });
    tx
}

/// The exit code of a finished process as runc reports it (signals as 128 + n).
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Resizes an exec's terminal: the size of runc's end, then SIGWINCH to runc.
fn resize_exec_terminal(path: &std::path::Path, pid: u32, width: u16, height: u16) {
    let ok = std::process::Command::new("stty")
        .arg("-F")
        .arg(path)
        .args(["rows", &height.to_string(), "cols", &width.to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGWINCH,
        );
    }
}

/// Runs `command` in container `id`.
pub fn exec_runner(runtime: Arc<dyn Runtime>, id: String, command: Vec<String>, options: Options) -> Runner {
    Box::new(move |io: Io| Box::pin(exec(runtime, id, command, options, io)))
}

async fn exec(
    runtime: Arc<dyn Runtime>,
    id: String,
    command: Vec<String>,
    options: Options,
    io: Io,
) -> Outcome {
    let Io { mut events, output } = io;
    let mut early = Vec::new();
    let mut size = None;
    if options.tty {
        // kubectl sends the terminal's size as it opens the streams: start the process on a
        // terminal of that size (a process reading it at once would see 0x0). Stdin that comes
        // first is kept for the process.
        let deadline = tokio::time::Instant::now() + FIRST_SIZE_WAIT;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
            match event {
                Event::Resize { width, height } => {
                    size = Some((height, width));
                    break;
                }
                other => early.push(other),
            }
        }
    }
    let config = ExecConfig {
        command: command.clone(),
        tty: options.tty,
        terminal_size: size,
        env: Vec::new(),
    };
    let spawned = {
        let runtime = runtime.clone();
        tokio::task::spawn_blocking(move || runtime.exec(&id, &config)).await
    };
    let mut process = match spawned {
        Ok(Ok(process)) => process,
        Ok(Err(err)) => return Outcome::Error(format!("error executing command in container: {err}")),
        Err(err) => return Outcome::Error(format!("error executing command in container: {err}")),
    };
    let pid = process.child.id();
    let mut pumps = Vec::new();
    let stdin = if let Some(terminal) = process.terminal.take() {
        let reader = match terminal.try_clone() {
            Ok(reader) => reader,
            Err(err) => return Outcome::Error(format!("error executing command in container: {err}")),
        };
        pumps.push(pump(reader, output.clone(), true, !options.stdout));
        options.stdin.then(|| stdin_writer(terminal))
    } else {
        if let Some(out) = process.child.stdout.take() {
            pumps.push(pump(out, output.clone(), true, !options.stdout));
        }
        if let Some(err) = process.child.stderr.take() {
            pumps.push(pump(err, output.clone(), false, !options.stderr));
        }
        // Without stdin the process reads EOF at once.
        let pipe = process.child.stdin.take();
        if options.stdin {
            pipe.map(stdin_writer)
        } else {
            None
        }
    };
    drop(output);
    let terminal_path = process.terminal_path.clone();
    let forward = tokio::spawn(async move {
        let mut stdin = stdin;
        let handle = |event: Event, stdin: &mut Option<std::sync::mpsc::Sender<Vec<u8>>>| match event {
            Event::Stdin(bytes) => {
                if let Some(tx) = stdin {
                    let _ = tx.send(bytes);
                }
            }
            Event::StdinEnd => *stdin = None,
            Event::Resize { width, height } => {
                if let Some(path) = terminal_path.clone() {
                    std::thread::spawn(move || resize_exec_terminal(&path, pid, width, height));
                }
            }
        };
        for event in early {
            handle(event, &mut stdin);
        }
        while let Some(event) = events.recv().await {
            handle(event, &mut stdin);
        }
    });
    let mut child = process.child;
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait();
        for pump in pumps {
            let _ = pump.join();
        }
        status
    })
    .await;
    forward.abort();
    match status {
        Ok(Ok(status)) if status.success() => Outcome::Success,
        Ok(Ok(status)) => {
            let code = exit_code(status);
            Outcome::ExitCode {
                code,
                message: format!(
                    "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                    command.join(" ")
                ),
            }
        }
        Ok(Err(err)) => Outcome::Error(format!("error executing command in container: {err}")),
        Err(err) => Outcome::Error(format!("error executing command in container: {err}")),
    }
}

/// Attaches to running container `id`: its stdin and terminal size, and its output from now on.
pub fn attach_runner(
    runtime: Arc<dyn Runtime>,
    id: String,
    log_path: std::path::PathBuf,
    options: Options,
) -> Runner {
    Box::new(move |io: Io| Box::pin(attach(runtime, id, log_path, options, io)))
}

async fn attach(
    runtime: Arc<dyn Runtime>,
    id: String,
    log_path: std::path::PathBuf,
    options: Options,
    io: Io,
) -> Outcome {
    let Io { mut events, output } = io;
    let stdin = if options.stdin {
        let (runtime, id) = (runtime.clone(), id.clone());
        match tokio::task::spawn_blocking(move || runtime.attach_stdin(&id)).await {
            Ok(Ok(file)) => Some(stdin_writer(file)),
            Ok(Err(err)) => return Outcome::Error(err.to_string()),
            Err(err) => return Outcome::Error(err.to_string()),
        }
    } else {
        None
    };
    let forward = {
        let (runtime, id) = (runtime.clone(), id.clone());
        tokio::spawn(async move {
            let mut stdin = stdin;
            while let Some(event) = events.recv().await {
                match event {
                    Event::Stdin(bytes) => {
                        if let Some(tx) = &stdin {
                            let _ = tx.send(bytes);
                        }
                    }
                    Event::StdinEnd => stdin = None,
                    Event::Resize { width, height } => {
                        let (runtime, id) = (runtime.clone(), id.clone());
                        tokio::task::spawn_blocking(move || runtime.resize_terminal(&id, height, width));
                    }
                }
            }
        })
    };
    // The output: the log from its current end, as records arrive, until the container exits.
    let follower = std::thread::spawn(move || {
        let mut offset = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let mut finishing = false;
        loop {
            let chunk = read_from(&log_path, &mut offset);
            for record in chunk.lines().filter_map(runtime::logs::parse_record) {
                let mut data = record.content.into_bytes();
                if !record.partial {
                    data.push(b'\n');
                }
                let out = match record.stream {
                    Stream::Stderr if options.stderr => Output::Stderr(data),
                    Stream::Stdout if options.stdout => Output::Stdout(data),
                    _ => continue,
                };
                if output.blocking_send(out).is_err() {
                    return;
                }
            }
            if finishing {
                return;
            }
            if chunk.is_empty() {
                finishing = !runtime
                    .container_status(&id)
                    .is_ok_and(|s| s.state == ContainerState::Running);
                if !finishing {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    });
    let _ = tokio::task::spawn_blocking(move || follower.join()).await;
    forward.abort();
    Outcome::Success
}

fn read_from(path: &std::path::Path, offset: &mut u64) -> String {
    use std::io::{Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(*offset)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
        return String::new();
    };
    bytes.truncate(end + 1);
    *offset += bytes.len() as u64;
    String::from_utf8_lossy(&bytes).into_owned()
}
