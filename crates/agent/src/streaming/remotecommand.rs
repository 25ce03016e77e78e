//! The remote command protocol of exec and attach (`k8s.io/apimachinery/pkg/util/remotecommand`
//! and kubelet's `cri/streaming/remotecommand`), over a WebSocket (`v5.channel.k8s.io` … the
//! first byte of a message names its channel: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize,
//! 255 close; `base64.` variants in text messages) or SPDY (one stream per `streamType`).
//! What runs — an exec'd process, an attached container — is a [`Runner`]: it reads
//! [`Event`]s, writes [`Output`] and ends with an [`Outcome`], which goes on the error
//! channel as kubelet writes it (v4 and later: a `metav1.Status`; before: the error's text).

use std::future::Future;
use std::pin::Pin;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::{session, ws};

/// What the client asked to stream (`stdin`, `stdout`, `stderr`, `tty` query flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Protocol versions; the WebSocket ones may be base64-encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V1,
    V2,
    V3,
    V4,
    V5,
}

/// WebSocket subprotocols kubelet serves: (name, version, base64).
pub const WEBSOCKET_PROTOCOLS: &[(&str, Version, bool)] = &[
    ("v5.channel.k8s.io", Version::V5, false),
    ("v4.channel.k8s.io", Version::V4, false),
    ("v4.base64.channel.k8s.io", Version::V4, true),
    ("v3.channel.k8s.io", Version::V3, false),
    ("v3.base64.channel.k8s.io", Version::V3, true),
    ("v2.channel.k8s.io", Version::V2, false),
    ("v2.base64.channel.k8s.io", Version::V2, true),
    ("channel.k8s.io", Version::V1, false),
    ("base64.channel.k8s.io", Version::V1, true),
];

/// SPDY stream protocols (`X-Stream-Protocol-Version`), in the server's preference.
pub const SPDY_PROTOCOLS: &[(&str, Version)] = &[
    ("v4.channel.k8s.io", Version::V4),
    ("v3.channel.k8s.io", Version::V3),
    ("v2.channel.k8s.io", Version::V2),
    ("channel.k8s.io", Version::V1),
];

/// What the client sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Stdin(Vec<u8>),
    /// Stdin reached its end (v5 close signal, SPDY FIN, or the client went away).
    StdinEnd,
    Resize {
        width: u16,
        height: u16,
    },
}

/// What goes back to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// How the command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Exited non-zero; `message` is upstream's (`command terminated with non-zero exit code: …`).
    ExitCode {
        code: i32,
        message: String,
    },
    Error(String),
}

pub struct Io {
    /// Ends when the client is gone or its stdin ended and nothing more can come.
    pub events: mpsc::Receiver<Event>,
    pub output: mpsc::Sender<Output>,
}

pub type Runner = Box<dyn FnOnce(Io) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send>;

/// The error channel's content for an outcome; `None`: nothing is written.
pub fn status_message(version: Version, outcome: &Outcome) -> Option<Vec<u8>> {
    if version < Version::V4 {
        return match outcome {
            Outcome::Success => None,
            Outcome::ExitCode { message, .. } | Outcome::Error(message) => Some(message.clone().into_bytes()),
        };
    }
    let status: Value = match outcome {
        Outcome::Success => json!({"metadata": {}, "status": "Success"}),
        Outcome::ExitCode { code, message } => json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Error(message) => json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }),
    };
    Some(status.to_string().into_bytes())
}

/// Reads `{"Width":…,"Height":…}` objects from a byte stream that may split or join them.
#[derive(Default)]
struct ResizeDecoder {
    buf: Vec<u8>,
}

impl ResizeDecoder {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut consumed = 0;
        let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
        while let Some(Ok(value)) = values.next() {
            consumed = values.byte_offset();
            let size = |k: &str| {
                value
                    .get(k)
                    .and_then(Value::as_u64)
                    .map(|v| v.min(u16::MAX.into()) as u16)
            };
            if let (Some(width), Some(height)) = (size("Width"), size("Height")) {
                events.push(Event::Resize { width, height });
            }
        }
        self.buf.drain(..consumed);
        if self.buf.len() > 64 * 1024 {
            self.buf.clear();
        }
        events
    }
}

/// Serves a remote command over an upgraded WebSocket connection.
pub async fn serve_websocket<S>(io: S, version: Version, base64: bool, runner: Runner)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(io);
    let (events_tx, events) = mpsc::channel::<Event>(16);
    let (output, mut output_rx) = mpsc::channel::<Output>(16);
    let (pong_tx, mut pong_rx) = mpsc::channel::<Vec<u8>>(4);
    let read_task = tokio::spawn(async move {
        let mut reader = ws::Reader::new(reader);
        let mut resize = ResizeDecoder::default();
        while let Ok(Some(message)) = reader.next().await {
            let (channel, data) = match message.opcode {
                ws::Opcode::Ping => {
                    let _ = pong_tx.send(message.data).await;
                    continue;
                }
                ws::Opcode::Close => break,
                // Upstream reads whole messages whatever their opcode: the Python client
                // sends stdin in text frames (channel byte first) on the plain protocols.
                ws::Opcode::Binary | ws::Opcode::Text if !base64 && !message.data.is_empty() => {
                    (message.data[0], message.data[1..].to_vec())
                }
                ws::Opcode::Binary if !message.data.is_empty() => {
                    (message.data[0], message.data[1..].to_vec())
                }
                ws::Opcode::Text if base64 && !message.data.is_empty() => {
                    let channel = message.data[0].wrapping_sub(b'0');
                    let Ok(data) = base64::engine::general_purpose::STANDARD.decode(&message.data[1..])
                    else {
                        continue;
                    };
                    (channel, data)
                }
                _ => continue,
            };
            let events = match channel {
                0 if !data.is_empty() => vec![Event::Stdin(data)],
                4 => resize.feed(&data),
                255 if version >= Version::V5 && data.first() == Some(&0) => vec![Event::StdinEnd],
                _ => continue,
            };
            for event in events {
                if events_tx.send(event).await.is_err() {
                    return;
                }
            }
        }
        let _ = events_tx.send(Event::StdinEnd).await;
    });
    let outcome = tokio::spawn(runner(Io { events, output }));
    let mut writer = ws::Writer::server(writer);
    let encode = |channel: u8, data: &[u8]| -> (ws::Opcode, Vec<u8>) {
        if base64 {
            let mut text = vec![b'0' + channel];
            text.extend(
                base64::engine::general_purpose::STANDARD
                    .encode(data)
                    .into_bytes(),
            );
            (ws::Opcode::Text, text)
        } else {
            let mut bytes = vec![channel];
            bytes.extend_from_slice(data);
            (ws::Opcode::Binary, bytes)
        }
    };
    loop {
        tokio::select! {
            out = output_rx.recv() => {
                let (channel, data) = match out {
                    Some(Output::Stdout(data)) => (1, data),
                    Some(Output::Stderr(data)) => (2, data),
                    None => break,
                };
                let (opcode, frame) = encode(channel, &data);
                if writer.send(opcode, &frame).await.is_err() {
                    read_task.abort();
                    return;
                }
            }
            Some(ping) = pong_rx.recv() => {
                if writer.send(ws::Opcode::Pong, &ping).await.is_err() {
                    read_task.abort();
                    return;
                }
            }
        }
    }
    let outcome = outcome
        .await
        .unwrap_or_else(|err| Outcome::Error(format!("the stream handler failed: {err}")));
    if let Some(message) = status_message(version, &outcome) {
        let (opcode, frame) = encode(3, &message);
        let _ = writer.send(opcode, &frame).await;
    }
    let _ = writer.close(1000).await;
    read_task.abort();
}

/// How long the client has to open its streams, as kubelet's stream creation timeout.
const STREAM_CREATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves a remote command over a SPDY connection (after the 101 answer).
pub async fn serve_spdy<S>(io: S, version: Version, options: Options, runner: Runner)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut streams, writer) = session::start(super::raw_transport(io));
    let expected = 1
        + usize::from(options.stdin)
        + usize::from(options.stdout)
        + usize::from(options.stderr && !options.tty)
        + usize::from(options.tty && version >= Version::V3);
    let (mut error, mut stdout, mut stderr) = (None, None, None);
    let (events_tx, events) = mpsc::channel::<Event>(16);
    let mut received = 0;
    let deadline = tokio::time::sleep(STREAM_CREATION_TIMEOUT);
    tokio::pin!(deadline);
    while received < expected {
        let stream = tokio::select! {
            stream = streams.recv() => match stream {
                Some(stream) => stream,
                None => return,
            },
            () = &mut deadline => {
                tracing::debug!("timed out waiting for the client's streams");
                writer.close().await;
                return;
            }
        };
        received += 1;
        let kind = stream.header("streamtype").unwrap_or_default().to_owned();
        match kind.as_str() {
            "error" => error = Some(stream.id),
            "stdout" => stdout = Some(stream.id),
            "stderr" => stderr = Some(stream.id),
            "stdin" => {
                let events_tx = events_tx.clone();
                let mut data = stream.data;
                tokio::spawn(async move {
                    while let Some(bytes) = data.recv().await {
                        if events_tx.send(Event::Stdin(bytes)).await.is_err() {
                            return;
                        }
                    }
                    let _ = events_tx.send(Event::StdinEnd).await;
                });
            }
            "resize" => {
                let events_tx = events_tx.clone();
                let mut data = stream.data;
                tokio::spawn(async move {
                    let mut decoder = ResizeDecoder::default();
                    while let Some(bytes) = data.recv().await {
                        for event in decoder.feed(&bytes) {
                            if events_tx.send(event).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
            other => {
                tracing::debug!(stream_type = other, "unexpected stream type");
                received -= 1;
                let _ = writer.reset(stream.id, super::spdy::RST_REFUSED_STREAM).await;
            }
        }
    }
    drop(events_tx);
    // Later streams are refused; the session's end is noticed through the writer.
    let refuser = {
        let writer = writer.clone();
        tokio::spawn(async move {
            while let Some(stream) = streams.recv().await {
                let _ = writer.reset(stream.id, super::spdy::RST_REFUSED_STREAM).await;
            }
        })
    };
    let (output, mut output_rx) = mpsc::channel::<Output>(16);
    let outcome = tokio::spawn(runner(Io { events, output }));
    while let Some(out) = output_rx.recv().await {
        let (id, data) = match out {
            Output::Stdout(data) => (stdout, data),
            Output::Stderr(data) => (stderr.or(if options.tty { stdout } else { None }), data),
        };
        if let Some(id) = id
            && writer.data(id, &data).await.is_err()
        {
            refuser.abort();
            return;
        }
    }
    let outcome = outcome
        .await
        .unwrap_or_else(|err| Outcome::Error(format!("the stream handler failed: {err}")));
    if let Some(id) = error {
        if let Some(message) = status_message(version, &outcome) {
            let _ = writer.data(id, &message).await;
        }
        let _ = writer.fin(id).await;
    }
    for id in [stdout, stderr].into_iter().flatten() {
        let _ = writer.fin(id).await;
    }
    writer.close().await;
    refuser.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_status_as_kubelet_writes_it() {
        let outcome = Outcome::ExitCode {
            code: 3,
            message: "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
                .into(),
        };
        let status: Value = serde_json::from_slice(&status_message(Version::V5, &outcome).unwrap()).unwrap();
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(
            status["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        assert_eq!(
            status_message(Version::V4, &Outcome::Success).unwrap(),
            br#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(status_message(Version::V2, &Outcome::Success), None);
    }

    /// The Python client writes stdin as text frames (`chr(0) + data`) on `v4`/`v5`.
    #[tokio::test]
    async fn stdin_in_text_frames_on_plain_protocols() {
        let (server_io, client_io) = tokio::io::duplex(4096);
        let runner: Runner = Box::new(|mut io: Io| {
            Box::pin(async move {
                while let Some(event) = io.events.recv().await {
                    match event {
                        Event::Stdin(data) => {
                            let _ = io.output.send(Output::Stdout(data)).await;
                        }
                        Event::StdinEnd => break,
                        Event::Resize { .. } => {}
                    }
                }
                Outcome::Success
            })
        });
        tokio::spawn(serve_websocket(server_io, Version::V5, false, runner));
        let (client_read, client_write) = tokio::io::split(client_io);
        let mut writer = ws::Writer::client(client_write);
        let mut reader = ws::Reader::new(client_read);
        writer.send(ws::Opcode::Text, b"\x00echo me\n").await.unwrap();
        let message = reader.next().await.unwrap().expect("a stdout message");
        assert_eq!(message.data, b"\x01echo me\n");
        writer.send(ws::Opcode::Binary, &[255, 0]).await.unwrap();
        let status = reader.next().await.unwrap().expect("the error channel");
        assert_eq!(status.data, b"\x03{\"metadata\":{},\"status\":\"Success\"}");
    }

    #[test]
    fn resize_messages_split_and_joined() {
        let mut decoder = ResizeDecoder::default();
        assert_eq!(decoder.feed(br#"{"Width":80,"He"#), vec![]);
        assert_eq!(
            decoder.feed(br#"ight":24}{"Width":100,"Height":30}"#),
            vec![
                Event::Resize {
                    width: 80,
                    height: 24
                },
                Event::Resize {
                    width: 100,
                    height: 30
                }
            ]
        );
    }
}
