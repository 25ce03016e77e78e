//! The per-container shim (`rkube shim <container dir>`): runs `runc run` in the foreground
//! with pipes for the container's stdout and stderr, writes them to the container's log in the
//! CRI format, and records in `state.json` when the container started and how it ended (exit
//! code, OOM kill, or why it never started). It runs in its own process group and outlives the
//! agent that started it, so containers survive an agent restart with their logs.

use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

use crate::Error;
use crate::cgroups::Cgroups;
use crate::logs::{self, Stream};
use crate::runc::{Runc, error_message};
use crate::state::{ShimConfig, ShimState, read_json, write_json};

/// containerd's exit code for a container that failed to start.
pub const START_ERROR_EXIT_CODE: i32 = 128;

/// The shim's main: returns the process exit code (0 once the container's end is recorded).
pub fn run(container_dir: &Path) -> i32 {
    match supervise(container_dir) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rkube shim: {e}");
            let state = ShimState {
                shim_pid: std::process::id(),
                finished_at: Some(Timestamp::now()),
                exit_code: Some(START_ERROR_EXIT_CODE),
                start_error: Some(e.to_string()),
                ..Default::default()
            };
            let _ = write_json(&container_dir.join("state.json"), &state);
            1
        }
    }
}

fn supervise(dir: &Path) -> Result<(), Error> {
    let shim_file = dir.join("shim.json");
    let config: ShimConfig = read_json(&shim_file)?
        .ok_or_else(|| Error::Invalid(format!("{} is missing", shim_file.display())))?;
    if let Some(parent) = config.log_path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
    }
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.log_path)
        .map_err(Error::io(&config.log_path))?;
    let log = Arc::new(Mutex::new(log_file));

    let pid_file = dir.join("init.pid");
    let runc_log = dir.join("runc.log");
    let _ = std::fs::remove_file(&pid_file);
    let runc = Runc {
        binary: config.runc.clone(),
        root: config.runc_root.clone(),
    };
    let mut command = runc.run_command(&config.id, &config.bundle, &pid_file, &runc_log);
    let stdin_fifo = dir.join("stdin");
    if config.stdin {
        make_fifo(&stdin_fifo)?;
    }
    let mut terminal = None;
    if config.tty {
        terminal = Some(crate::runc::on_new_terminal(&mut command, None)?);
        make_fifo(&dir.join("resize"))?;
    } else {
        command
            .stdin(if config.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    }
    let mut child = command.spawn().map_err(Error::io(&config.runc))?;
    // Our copies of the terminal's other end must go, or its master never sees the end.
    drop(command);

    let mut outputs: Vec<(Box<dyn std::io::Read + Send>, Stream)> = Vec::new();
    let mut stdin_target: Option<Box<dyn std::io::Write + Send>> = None;
    match &terminal {
        Some((master, slave_path)) => {
            let clone = || master.try_clone().map_err(Error::io(Path::new("/dev/ptmx")));
            outputs.push((Box::new(clone()?), Stream::Stdout));
            if config.stdin {
                stdin_target = Some(Box::new(clone()?));
            }
            if let Some(slave_path) = slave_path.clone() {
                let resize = dir.join("resize");
                let runc_pid = child.id();
                std::thread::spawn(move || forward_resizes(&resize, &slave_path, runc_pid));
            }
        }
        None => {
            if let Some(stdout) = child.stdout.take() {
                outputs.push((Box::new(stdout), Stream::Stdout));
            }
            if let Some(stderr) = child.stderr.take() {
                outputs.push((Box::new(stderr), Stream::Stderr));
            }
            if let Some(stdin) = child.stdin.take() {
                stdin_target = Some(Box::new(stdin));
            }
        }
    }
    if let Some(target) = stdin_target {
        let once = config.stdin_once;
        // Never joined: it may wait for an attacher that never comes.
        std::thread::spawn(move || forward_stdin(&stdin_fifo, target, once));
    }
    let copiers: Vec<_> = outputs
        .into_iter()
        .map(|(pipe, stream)| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || logs::copy_stream(pipe, stream, &*log))
        })
        .collect();

    let state_file = dir.join("state.json");
    let mut state = ShimState {
        shim_pid: std::process::id(),
        ..Default::default()
    };
    // Running once runc has written the init pid; runc may also fail before that. A quick
    // container may be gone before the first look: its pid file still tells it started.
    let read_pid = || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
    };
    let mark_started = |state: &mut ShimState, pid: i32| -> Result<(), Error> {
        state.pid = Some(pid);
        state.started_at = Some(Timestamp::now());
        write_json(&state_file, state)
    };
    let status = loop {
        if let Some(pid) = read_pid() {
            mark_started(&mut state, pid)?;
            break child.wait().map_err(Error::io(&config.runc))?;
        }
        if let Some(status) = child.try_wait().map_err(Error::io(&config.runc))? {
            if let Some(pid) = read_pid() {
                mark_started(&mut state, pid)?;
            }
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    for copier in copiers {
        if let Ok(Err(e)) = copier.join() {
            tracing::warn!(error = %e, "writing the container log");
        }
    }

    let exit_code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    if state.pid.is_none() {
        let runc_errors = std::fs::read_to_string(&runc_log).unwrap_or_default();
        let message = match error_message(&runc_errors) {
            m if m.is_empty() => format!("runc exited with status {exit_code} before the container started"),
            m => m,
        };
        state.start_error = Some(message);
        state.exit_code = Some(START_ERROR_EXIT_CODE);
    } else {
        state.exit_code = Some(exit_code);
        // The cgroup is still there (`run --keep`): did the kernel's OOM killer act in it?
        let oom_kills = Cgroups::detect()
            .ok()
            .and_then(|c| c.oom_kills(&config.cgroups_path))
            .unwrap_or(0);
        state.oom_killed = oom_kills > 0 && exit_code == 128 + 9;
    }
    state.finished_at = Some(Timestamp::now());
    write_json(&state_file, &state)
}

fn make_fifo(path: &Path) -> Result<(), Error> {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| Error::Io {
        path: path.to_owned(),
        source: e.into(),
    })
}

/// Copies what attachers write into the stdin fifo to the container, one attacher after the
/// other (each open blocks until a writer comes); with `once`, the container's stdin closes
/// when the first attacher leaves.
fn forward_stdin(fifo: &Path, mut target: Box<dyn std::io::Write + Send>, once: bool) {
    while let Ok(mut attacher) = std::fs::File::open(fifo) {
        if std::io::copy(&mut attacher, &mut target).is_err() || once {
            break;
        }
    }
}

/// Applies `rows columns` lines written to the resize fifo to the terminal runc holds, and
/// tells runc (SIGWINCH), which resizes the container's terminal to match.
fn forward_resizes(fifo: &Path, slave: &Path, runc_pid: u32) {
    use std::io::BufRead;
    while let Ok(reader) = std::fs::File::open(fifo) {
        for line in std::io::BufReader::new(reader).lines().map_while(Result::ok) {
            let mut size = line.split_whitespace().map(|n| n.parse::<u16>());
            let (Some(Ok(rows)), Some(Ok(columns))) = (size.next(), size.next()) else {
                continue;
            };
            let resized = std::process::Command::new("stty")
                .arg("-F")
                .arg(slave)
                .args(["rows", &rows.to_string(), "cols", &columns.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if resized {
                let pid = nix::unistd::Pid::from_raw(runc_pid as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGWINCH);
            }
        }
    }
}
