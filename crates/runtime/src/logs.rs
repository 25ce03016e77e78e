//! Container logs in the CRI format kubelet reads for `kubectl logs`, one record a line:
//! `<RFC3339Nano time> <stdout|stderr> <F|P> <content>`. `F` ends a line; a line longer than
//! [`MAX_LINE`] is split into `P` (partial) records and a final `F`, as containerd does. Paths
//! follow kubelet: `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;

/// containerd's default `max_container_log_line_size`.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The pod's log directory under `root` (kubelet: `/var/log/pods`).
pub fn pod_log_dir(root: &Path, namespace: &str, pod_name: &str, pod_uid: &str) -> PathBuf {
    root.join(format!("{namespace}_{pod_name}_{pod_uid}"))
}

/// A container's log file for one run (restart count) in its pod's log directory.
pub fn container_log_path(pod_log_dir: &Path, container: &str, restart_count: u32) -> PathBuf {
    pod_log_dir.join(container).join(format!("{restart_count}.log"))
}

/// One record as written.
pub fn format_record(time: Timestamp, stream: Stream, partial: bool, content: &[u8]) -> Vec<u8> {
    // jiff prints RFC 3339 with the fraction's trailing zeros dropped, as Go's RFC3339Nano.
    let mut out = format!("{time} {} {} ", stream.as_str(), if partial { "P" } else { "F" }).into_bytes();
    out.extend_from_slice(content);
    out.push(b'\n');
    out
}

/// One record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub time: Timestamp,
    pub stream: Stream,
    pub partial: bool,
    pub content: String,
}

pub fn parse_record(line: &str) -> Option<Record> {
    let mut parts = line.splitn(4, ' ');
    let time = parts.next()?.parse().ok()?;
    let stream = match parts.next()? {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        "P" => true,
        "F" => false,
        _ => return None,
    };
    Some(Record {
        time,
        stream,
        partial,
        content: parts.next().unwrap_or_default().to_owned(),
    })
}

/// What `kubectl logs` asks for (the non-following part of kubelet's `ReadLogs`).
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// The last N records of the file (`--tail`), counted as kubelet counts them.
    pub tail_lines: Option<usize>,
    /// Records at or after this time (`--since`, `--since-time`).
    pub since: Option<Timestamp>,
    /// Prefix each record with its time (`--timestamps`), nine fraction digits as kubelet.
    pub timestamps: bool,
    /// Stop after this many bytes (`--limit-bytes`).
    pub limit_bytes: Option<usize>,
}

/// The container output a log file holds, as kubelet serves it: partial records joined, each
/// full line ended by `\n`; unparsable lines skipped.
pub fn read(path: &Path, options: &ReadOptions) -> std::io::Result<Vec<u8>> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    format_records(&text, options, options.tail_lines, &mut 0, &mut out);
    Ok(out)
}

/// Formats the complete records of `text` as kubelet serves them; false once `limit_bytes` is
/// reached (`written` counts across calls).
pub fn format_records(
    text: &str,
    options: &ReadOptions,
    tail: Option<usize>,
    written: &mut usize,
    out: &mut Vec<u8>,
) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let start = tail.map_or(0, |n| lines.len().saturating_sub(n));
    for record in lines[start..].iter().filter_map(|l| parse_record(l)) {
        if options.since.is_some_and(|since| record.time < since) {
            continue;
        }
        let before = out.len();
        if options.timestamps {
            let time = record.time;
            out.extend_from_slice(
                format!(
                    "{}.{:09}Z ",
                    time.strftime("%Y-%m-%dT%H:%M:%S"),
                    time.subsec_nanosecond()
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(record.content.as_bytes());
        if !record.partial {
            out.push(b'\n');
        }
        *written += out.len() - before;
        if let Some(limit) = options.limit_bytes
            && *written >= limit
        {
            out.truncate(out.len() - (*written - limit));
            return false;
        }
    }
    true
}

/// Copies one output stream (a pipe, or a terminal) into the log until EOF, a record per line (the trailing `\n` or
/// `\r\n` dropped; an unterminated last line is still a full line). Records of both streams
/// go through the one file lock, so lines never interleave.
pub fn copy_stream(mut from: impl Read, stream: Stream, to: &Mutex<impl Write>) -> std::io::Result<()> {
    let mut pending: Vec<u8> = Vec::with_capacity(MAX_LINE);
    let mut chunk = vec![0u8; MAX_LINE];
    let write = |content: &[u8], partial: bool| -> std::io::Result<()> {
        let record = format_record(Timestamp::now(), stream, partial, content);
        to.lock().unwrap_or_else(|e| e.into_inner()).write_all(&record)
    };
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A terminal's master reads EIO once its other end is closed: the end.
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => break,
            Err(e) => return Err(e),
        };
        pending.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
            let mut line = &pending[start..start + pos];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            write_line(line, &write)?;
            start += pos + 1;
        }
        pending.drain(..start);
        while pending.len() >= MAX_LINE {
            write(&pending[..MAX_LINE], true)?;
            pending.drain(..MAX_LINE);
        }
    }
    if !pending.is_empty() {
        write(&pending, false)?;
    }
    Ok(())
}

fn write_line(mut line: &[u8], write: &impl Fn(&[u8], bool) -> std::io::Result<()>) -> std::io::Result<()> {
    while line.len() > MAX_LINE {
        write(&line[..MAX_LINE], true)?;
        line = &line[MAX_LINE..];
    }
    write(line, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(input: &[u8]) -> Vec<Record> {
        let out = Mutex::new(Vec::new());
        copy_stream(input, Stream::Stderr, &out).unwrap();
        let text = String::from_utf8(out.into_inner().unwrap()).unwrap();
        text.lines()
            .map(|l| parse_record(l).unwrap_or_else(|| panic!("bad record {l:?}")))
            .collect()
    }

    #[test]
    fn one_record_per_line() {
        let r = records(b"hello\r\nworld\n\nlast");
        let lines: Vec<(&str, bool)> = r.iter().map(|r| (r.content.as_str(), r.partial)).collect();
        assert_eq!(
            lines,
            vec![("hello", false), ("world", false), ("", false), ("last", false)]
        );
        assert!(r.iter().all(|r| r.stream == Stream::Stderr));
    }

    #[test]
    fn long_lines_split_into_partial_records() {
        let mut input = vec![b'a'; MAX_LINE * 2 + 10];
        input.push(b'\n');
        let r = records(&input);
        let shape: Vec<(usize, bool)> = r.iter().map(|r| (r.content.len(), r.partial)).collect();
        assert_eq!(shape, vec![(MAX_LINE, true), (MAX_LINE, true), (10, false)]);
    }

    #[test]
    fn record_format_matches_cri() {
        let time: Timestamp = "2016-10-06T00:17:09.669794202Z".parse().unwrap();
        let line = format_record(time, Stream::Stdout, false, b"log content");
        assert_eq!(line, b"2016-10-06T00:17:09.669794202Z stdout F log content\n");
        let time: Timestamp = "2016-10-06T00:17:09.5Z".parse().unwrap();
        assert_eq!(
            format_record(time, Stream::Stderr, true, b"x"),
            b"2016-10-06T00:17:09.5Z stderr P x\n"
        );
        assert_eq!(
            container_log_path(
                &pod_log_dir(Path::new("/var/log/pods"), "ns", "web", "u1"),
                "app",
                2
            ),
            Path::new("/var/log/pods/ns_web_u1/app/2.log")
        );
    }

    #[test]
    fn reads_back_as_kubelet_serves_logs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(
            &path,
            "2026-01-01T00:00:01.5Z stdout F one\n\
             2026-01-01T00:00:02Z stderr P tw\n\
             2026-01-01T00:00:02.000000001Z stderr F o\n\
             garbage\n\
             2026-01-01T00:00:03Z stdout F three\n",
        )
        .unwrap();
        let read = |options: ReadOptions| String::from_utf8(read(&path, &options).unwrap()).unwrap();
        assert_eq!(read(ReadOptions::default()), "one\ntwo\nthree\n");
        assert_eq!(
            read(ReadOptions {
                tail_lines: Some(1),
                ..Default::default()
            }),
            "three\n"
        );
        let since = "2026-01-01T00:00:02Z".parse().unwrap();
        assert_eq!(
            read(ReadOptions {
                since: Some(since),
                ..Default::default()
            }),
            "two\nthree\n"
        );
        assert_eq!(
            read(ReadOptions {
                limit_bytes: Some(5),
                ..Default::default()
            }),
            "one\nt"
        );
        // Tail counts the file's lines, as kubelet does (an unparsable one too).
        assert_eq!(
            read(ReadOptions {
                timestamps: true,
                tail_lines: Some(3),
                ..Default::default()
            }),
            "2026-01-01T00:00:02.000000001Z o\n2026-01-01T00:00:03.000000000Z three\n"
        );
        assert_eq!(read(ReadOptions::default()).len(), 14);
        assert_eq!(
            super::read(&dir.path().join("missing.log"), &ReadOptions::default()).unwrap(),
            b""
        );
    }
}
