//! Port forwarding (`portforward.k8s.io`) over a SPDY session: for each connection the client
//! opens an `error` and a `data` stream with the same `requestID` and a `port` header; the
//! server connects to that port in the pod and copies bytes both ways on the data stream,
//! writing what went wrong on the error stream (kubelet's `error forwarding port …`).
//! The same session runs over a raw upgraded connection (SPDY) or binary WebSocket messages
//! (kubectl ≥ 1.31's `SPDY/3.1+portforward.k8s.io`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ByteTransport;
use super::session::{self, SessionWriter, Stream};

pub const PROTOCOL: &str = "portforward.k8s.io";
/// The subprotocol of SPDY tunnelled through a WebSocket.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// How long one direction may go on once the other has ended.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens a connection to a port of the pod.
pub type Connector =
    Arc<dyn Fn(u16) -> Pin<Box<dyn Future<Output = std::io::Result<TcpStream>> + Send>> + Send + Sync>;

/// Serves port-forward streams until the client goes away. `describe` names the pod in error
/// messages (`<pod>, uid <uid>`).
pub async fn serve(transport: ByteTransport, connector: Connector, describe: String) {
    let (mut streams, writer) = session::start(transport);
    let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    while let Some(stream) = streams.recv().await {
        let request = stream.header("requestid").unwrap_or_default().to_owned();
        let kind = stream.header("streamtype").unwrap_or_default().to_owned();
        let entry = pending.entry(request.clone()).or_default();
        match kind.as_str() {
            "error" => entry.0 = Some(stream),
            "data" => entry.1 = Some(stream),
            _ => {
                let _ = writer.reset(stream.id, super::spdy::RST_REFUSED_STREAM).await;
                continue;
            }
        }
        if entry.0.is_some() && entry.1.is_some() {
            let Some((Some(error), Some(data))) = pending.remove(&request) else {
                continue;
            };
            tokio::spawn(forward(
                error,
                data,
                writer.clone(),
                connector.clone(),
                describe.clone(),
            ));
        }
    }
}

async fn forward(error: Stream, data: Stream, writer: SessionWriter, connector: Connector, describe: String) {
    let port = data.header("port").unwrap_or_default().to_owned();
    let result = match port.parse::<u16>() {
        Ok(port) if port > 0 => connector(port).await.map_err(|e| e.to_string()),
        _ => Err(format!("invalid port {port:?}")),
    };
    let tcp = match result {
        Ok(tcp) => tcp,
        Err(err) => {
            let message = format!("error forwarding port {port} to pod {describe}: {err}");
            let _ = writer.data(error.id, message.as_bytes()).await;
            let _ = writer.fin(error.id).await;
            let _ = writer.fin(data.id).await;
            return;
        }
    };
    let (mut tcp_read, mut tcp_write) = tcp.into_split();
    let mut from_client = data.data;
    let mut upload = tokio::spawn(async move {
        while let Some(bytes) = from_client.recv().await {
            if tcp_write.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = tcp_write.shutdown().await;
    });
    let download_writer = writer.clone();
    let mut download = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match tcp_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if download_writer.data(data.id, &buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    // As containerd's port forward: once one direction ends, the other gets a second to
    // finish, then both streams close (kubectl closes its local connection on that).
    let other = tokio::select! {
        _ = &mut upload => &mut download,
        _ = &mut download => &mut upload,
    };
    if tokio::time::timeout(LINGER, &mut *other).await.is_err() {
        other.abort();
    }
    let _ = writer.fin(data.id).await;
    let _ = writer.fin(error.id).await;
}

/// WebSocket subprotocols of the channel form (`?ports=`), as kubelet's: (name, base64).
pub const WEBSOCKET_PROTOCOLS: &[(&str, bool)] = &[
    ("v4.channel.k8s.io", false),
    ("v4.base64.channel.k8s.io", true),
    ("channel.k8s.io", false),
    ("base64.channel.k8s.io", true),
];

/// Port forwarding in the WebSocket channel form kube-rs and the Python client use: the ports
/// are in the query; port i's data goes on channel 2i and its errors on 2i+1, each of which
/// first carries the port number (2 bytes, little-endian); one connection per port.
pub async fn serve_websocket<S>(io: S, base64: bool, ports: Vec<u16>, connector: Connector, describe: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    use base64::Engine as _;
    use tokio::sync::mpsc;

    use super::ws;

    let (reader, writer) = tokio::io::split(io);
    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Vec<u8>)>(16);
    let (pong_tx, mut pong_rx) = mpsc::channel::<Vec<u8>>(4);
    let mut uploads: Vec<mpsc::Sender<Vec<u8>>> = Vec::new();
    let mut forwards = tokio::task::JoinSet::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let (data_ch, error_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        let _ = out_tx.send((data_ch, port.to_le_bytes().to_vec())).await;
        let _ = out_tx.send((error_ch, port.to_le_bytes().to_vec())).await;
        let (up_tx, mut up_rx) = mpsc::channel::<Vec<u8>>(16);
        uploads.push(up_tx);
        let (out, connector, describe) = (out_tx.clone(), connector.clone(), describe.clone());
        forwards.spawn(async move {
            let tcp = match connector(port).await {
                Ok(tcp) => tcp,
                Err(err) => {
                    let message = format!("error forwarding port {port} to pod {describe}: {err}");
                    let _ = out.send((error_ch, message.into_bytes())).await;
                    return;
                }
            };
            let (mut tcp_read, mut tcp_write) = tcp.into_split();
            let mut upload = tokio::spawn(async move {
                while let Some(bytes) = up_rx.recv().await {
                    if tcp_write.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                let _ = tcp_write.shutdown().await;
            });
            let mut download = tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match tcp_read.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if out.send((data_ch, buf[..n].to_vec())).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            let other = tokio::select! {
                _ = &mut upload => &mut download,
                _ = &mut download => &mut upload,
            };
            if tokio::time::timeout(LINGER, &mut *other).await.is_err() {
                other.abort();
            }
        });
    }
    drop(out_tx);
    let read_task = tokio::spawn(async move {
        let mut reader = ws::Reader::new(reader);
        while let Ok(Some(message)) = reader.next().await {
            let (channel, data) = match message.opcode {
                ws::Opcode::Ping => {
                    let _ = pong_tx.send(message.data).await;
                    continue;
                }
                ws::Opcode::Close => break,
                ws::Opcode::Binary if !message.data.is_empty() => {
                    (message.data[0], message.data[1..].to_vec())
                }
                ws::Opcode::Text if base64 && !message.data.is_empty() => {
                    let Ok(data) = base64::engine::general_purpose::STANDARD.decode(&message.data[1..])
                    else {
                        continue;
                    };
                    (message.data[0].wrapping_sub(b'0'), data)
                }
                _ => continue,
            };
            if channel % 2 == 0
                && !data.is_empty()
                && let Some(up) = uploads.get(usize::from(channel / 2))
            {
                let _ = up.send(data).await;
            }
        }
        // The client is gone: its side of every connection ends.
    });
    let mut writer = ws::Writer::server(writer);
    let mut done = false;
    while !done {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some((channel, data)) => {
                    let frame = if base64 {
                        let mut text = vec![b'0' + channel];
                        text.extend(base64::engine::general_purpose::STANDARD.encode(&data).into_bytes());
                        (ws::Opcode::Text, text)
                    } else {
                        let mut bytes = vec![channel];
                        bytes.extend(data);
                        (ws::Opcode::Binary, bytes)
                    };
                    if writer.send(frame.0, &frame.1).await.is_err() {
                        break;
                    }
                }
                None => done = true,
            },
            Some(ping) = pong_rx.recv() => {
                if writer.send(ws::Opcode::Pong, &ping).await.is_err() {
                    break;
                }
            }
        }
    }
    forwards.abort_all();
    read_task.abort();
    let _ = writer.close(1000).await;
}
