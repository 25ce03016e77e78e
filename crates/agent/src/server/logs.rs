//! `GET /containerLogs/{namespace}/{pod}/{container}`: a container's output from its CRI log
//! file with kubelet's options (`tailLines`, `sinceSeconds` / `sinceTime`, `timestamps`,
//! `limitBytes`, `previous`), and with `follow` what it writes next until it exits.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use runtime::logs::{ReadOptions, format_records};
use runtime::{ContainerState, Runtime};
use tokio::sync::mpsc;

/// How often a followed log is checked for more output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, Default)]
pub struct LogParams {
    pub follow: bool,
    pub previous: bool,
    pub options: ReadOptions,
}

fn flag(value: &str) -> bool {
    // Go's strconv.ParseBool truths; a bare `?follow` counts too.
    matches!(value, "" | "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// Reads kubelet's query parameters; errors as kubelet's 400 texts.
pub fn parse_params(query: &[(String, String)]) -> Result<LogParams, String> {
    let mut params = LogParams::default();
    for (key, value) in query {
        match key.as_str() {
            "follow" => params.follow = flag(value),
            "previous" => params.previous = flag(value),
            "timestamps" => params.options.timestamps = flag(value),
            "tailLines" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("invalid tailLines {value:?}"))?;
                if n < 0 {
                    return Err("tailLines: Invalid value: must be greater than or equal to 0".into());
                }
                params.options.tail_lines = Some(n as usize);
            }
            "limitBytes" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("invalid limitBytes {value:?}"))?;
                if n < 1 {
                    return Err("limitBytes: Invalid value: must be greater than 0".into());
                }
                params.options.limit_bytes = Some(n as usize);
            }
            "sinceSeconds" => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| format!("invalid sinceSeconds {value:?}"))?;
                if n < 1 {
                    return Err("sinceSeconds: Invalid value: must be greater than 0".into());
                }
                params.options.since = Timestamp::now()
                    .checked_sub(jiff::SignedDuration::from_secs(n))
                    .ok();
            }
            "sinceTime" => {
                let t: Timestamp = value
                    .parse()
                    .map_err(|_| format!("invalid sinceTime {value:?}"))?;
                params.options.since = Some(t);
            }
            _ => {}
        }
    }
    Ok(params)
}

/// Streams the log of container `id` (file `path`) into the returned channel, from a thread of
/// its own; it ends when all was sent (following: once the container has exited and its last
/// output was sent) or the receiver is dropped.
pub fn stream(
    runtime: Arc<dyn Runtime>,
    id: String,
    path: PathBuf,
    params: LogParams,
) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(8);
    std::thread::spawn(move || {
        let mut offset = 0u64;
        let mut written = 0usize;
        let mut tail = params.options.tail_lines;
        let mut finishing = false;
        loop {
            let chunk = read_complete_lines(&path, &mut offset);
            let mut out = Vec::new();
            let more = format_records(&chunk, &params.options, tail.take(), &mut written, &mut out);
            if !out.is_empty() && tx.blocking_send(out).is_err() {
                return;
            }
            if !more || !params.follow || (finishing && chunk.is_empty()) {
                return;
            }
            if chunk.is_empty() {
                let running = runtime
                    .container_status(&id)
                    .is_ok_and(|s| s.state != ContainerState::Exited);
                // One more read after the exit picks up the last lines.
                finishing = !running;
                if running {
                    std::thread::sleep(FOLLOW_POLL);
                }
            }
        }
    });
    rx
}

/// Why a container has no run to read logs from, from its status in the pod (kubelet's
/// `validateContainerLogStatus`); `None` when the API does not say.
pub async fn waiting_message(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Option<String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.clone(), namespace);
    let object = api.get_opt(pod).await.ok()??;
    let status = object.status?;
    let statuses = [
        status.container_statuses,
        status.init_container_statuses,
        status.ephemeral_container_statuses,
    ];
    let found = statuses
        .into_iter()
        .flatten()
        .flatten()
        .find(|s| s.name == container);
    let Some(found) = found else {
        return Some(format!("container {container:?} in pod {pod:?} is not available"));
    };
    let waiting = found.state.and_then(|s| s.waiting)?;
    let reason = waiting.reason.unwrap_or_default();
    let why = match reason.as_str() {
        "ErrImagePull" => "image can't be pulled",
        "ImagePullBackOff" => "trying and failing to pull image",
        other => other,
    };
    Some(format!(
        "container {container:?} in pod {pod:?} is waiting to start: {why}"
    ))
}

/// The complete lines written after `offset`, advancing it past them.
fn read_complete_lines(path: &std::path::Path, offset: &mut u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    if file.seek(SeekFrom::Start(*offset)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
        return String::new();
    };
    bytes.truncate(end + 1);
    *offset += bytes.len() as u64;
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-01-01T00:00:01.5Z stdout F one\n2026-01-01T00:00:02Z stderr P tw\n2026-01-01T00:00:02.1Z stderr F o\n2026-01-01T00:00:03Z stdout F three\n";

    fn run(options: ReadOptions) -> String {
        let mut out = Vec::new();
        let tail = options.tail_lines;
        format_records(LOG, &options, tail, &mut 0, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tail_since_timestamps_and_limit() {
        assert_eq!(run(ReadOptions::default()), "one\ntwo\nthree\n");
        assert_eq!(
            run(ReadOptions {
                tail_lines: Some(1),
                timestamps: true,
                ..Default::default()
            }),
            "2026-01-01T00:00:03.000000000Z three\n"
        );
        assert_eq!(
            run(ReadOptions {
                since: Some("2026-01-01T00:00:02Z".parse().unwrap()),
                ..Default::default()
            }),
            "two\nthree\n"
        );
        assert_eq!(
            run(ReadOptions {
                limit_bytes: Some(6),
                ..Default::default()
            }),
            "one\ntw"
        );
    }

    #[test]
    fn params_as_kubelet_reads_them() {
        let q = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert!(parse_params(&q("follow", "true")).unwrap().follow);
        assert_eq!(
            parse_params(&q("tailLines", "3")).unwrap().options.tail_lines,
            Some(3)
        );
        assert!(parse_params(&q("limitBytes", "0")).is_err());
        assert!(
            parse_params(&q("sinceTime", "2026-01-01T00:00:00Z"))
                .unwrap()
                .options
                .since
                .is_some()
        );
    }
}
