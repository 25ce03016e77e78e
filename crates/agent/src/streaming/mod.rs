//! The streaming protocols of the kubelet API, independent of what is streamed: WebSocket
//! ([`ws`]) and SPDY/3.1 ([`spdy`]) framing, the byte transports a SPDY session runs over (an
//! upgraded HTTP connection, or binary WebSocket messages for kubectl ≥ 1.31's tunnelled
//! port-forward) and the SPDY session itself ([`session`]), and the remote command protocol of
//! exec and attach over either ([`remotecommand`]).

pub mod portforward;
pub mod remotecommand;
pub mod session;
pub mod spdy;
pub mod ws;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Bytes in and out of a connection, decoupled from how they are framed on the wire.
pub struct ByteTransport {
    pub incoming: mpsc::Receiver<Vec<u8>>,
    pub outgoing: mpsc::Sender<Vec<u8>>,
}

/// A raw byte stream (an upgraded HTTP/1.1 connection).
pub fn raw_transport<S>(io: S) -> ByteTransport
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(io);
    let (in_tx, incoming) = mpsc::channel::<Vec<u8>>(16);
    let (outgoing, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if in_tx.send(buf[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    ByteTransport { incoming, outgoing }
}

/// A WebSocket whose binary messages carry a byte stream (kubectl's tunnelled SPDY).
pub fn websocket_transport<S>(io: S) -> ByteTransport
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(io);
    let (in_tx, incoming) = mpsc::channel::<Vec<u8>>(16);
    let (outgoing, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
    let (pong_tx, mut pong_rx) = mpsc::channel::<Vec<u8>>(4);
    tokio::spawn(async move {
        let mut reader = ws::Reader::new(reader);
        while let Ok(Some(message)) = reader.next().await {
            match message.opcode {
                ws::Opcode::Binary | ws::Opcode::Text => {
                    let Ok(()) = in_tx.send(message.data).await else {
                        break;
                    };
                }
                ws::Opcode::Ping => {
                    let _ = pong_tx.send(message.data).await;
                }
                ws::Opcode::Close => break,
                _ => {}
            }
        }
    });
    tokio::spawn(async move {
        let mut writer = ws::Writer::server(writer);
        loop {
            tokio::select! {
                bytes = out_rx.recv() => match bytes {
                    Some(bytes) => {
                        if writer.send(ws::Opcode::Binary, &bytes).await.is_err() {
                            return;
                        }
                    }
                    None => break,
                },
                Some(ping) = pong_rx.recv() => {
                    if writer.send(ws::Opcode::Pong, &ping).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = writer.close(1000).await;
    });
    ByteTransport { incoming, outgoing }
}
