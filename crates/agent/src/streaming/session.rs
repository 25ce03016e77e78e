//! A server-side SPDY session over a [`ByteTransport`]: the client opens streams (SYN_STREAM),
//! each is accepted at once (SYN_REPLY, as spdystream's server does) and handed over with its
//! headers and a receiver of its data; pings are answered; a [`SessionWriter`] sends data and
//! half-closes streams. Dropping every writer and the session ends the connection (GOAWAY).

use std::collections::HashMap;

use tokio::sync::mpsc;

use super::ByteTransport;
use super::spdy::{Decoder, Encoder, Frame, Headers};

/// A stream the client opened.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    /// The client's data on it; ends at its FIN (or a reset, or the connection's end).
    pub data: mpsc::Receiver<Vec<u8>>,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        super::spdy::header(&self.headers, name)
    }
}

enum Out {
    Frame(Frame),
    Close,
}

/// Sends on the session's streams; cheap to clone.
#[derive(Clone)]
pub struct SessionWriter {
    tx: mpsc::Sender<Out>,
}

impl SessionWriter {
    /// Data on a stream (split into frames of at most 32 KiB). Errors once the connection is gone.
    pub async fn data(&self, stream_id: u32, data: &[u8]) -> Result<(), Gone> {
        for chunk in data.chunks(32 * 1024) {
            self.send(Frame::Data {
                stream_id,
                fin: false,
                data: chunk.to_vec(),
            })
            .await?;
        }
        Ok(())
    }

    /// Half-closes a stream from this side.
    pub async fn fin(&self, stream_id: u32) -> Result<(), Gone> {
        self.send(Frame::Data {
            stream_id,
            fin: true,
            data: Vec::new(),
        })
        .await
    }

    pub async fn reset(&self, stream_id: u32, status: u32) -> Result<(), Gone> {
        self.send(Frame::RstStream { stream_id, status }).await
    }

    /// Ends the whole connection after what was queued before.
    pub async fn close(&self) {
        let _ = self.tx.send(Out::Close).await;
    }

    async fn send(&self, frame: Frame) -> Result<(), Gone> {
        self.tx.send(Out::Frame(frame)).await.map_err(|_| Gone)
    }
}

/// The connection has ended.
#[derive(Debug)]
pub struct Gone;

/// Starts the session: returns the streams as the client opens them (ending with the
/// connection) and a writer.
pub fn start(transport: ByteTransport) -> (mpsc::Receiver<Stream>, SessionWriter) {
    let ByteTransport {
        mut incoming,
        outgoing,
    } = transport;
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
    let writer = SessionWriter { tx: out_tx.clone() };
    let (streams_tx, streams_rx) = mpsc::channel::<Stream>(16);

    // Writer: frames → bytes.
    tokio::spawn(async move {
        let mut encoder = Encoder::default();
        let mut last_seen = 0;
        while let Some(out) = out_rx.recv().await {
            let bytes = match out {
                Out::Frame(frame) => {
                    if let Frame::SynReply { stream_id, .. } = &frame {
                        last_seen = *stream_id;
                    }
                    encoder.encode(&frame)
                }
                Out::Close => {
                    let goaway = encoder.encode(&Frame::GoAway {
                        last_good: last_seen,
                        status: 0,
                    });
                    let _ = outgoing.send(goaway).await;
                    break;
                }
            };
            if outgoing.send(bytes).await.is_err() {
                break;
            }
        }
        // Dropping `outgoing` closes the connection.
    });

    // Reader: bytes → frames → streams.
    let replies = out_tx;
    tokio::spawn(async move {
        let mut decoder = Decoder::default();
        let mut streams: HashMap<u32, mpsc::Sender<Vec<u8>>> = HashMap::new();
        'read: while let Some(bytes) = incoming.recv().await {
            decoder.feed(&bytes);
            loop {
                let frame = match decoder.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(err) => {
                        tracing::debug!(%err, "bad SPDY frame");
                        break 'read;
                    }
                };
                match frame {
                    Frame::SynStream {
                        stream_id,
                        fin,
                        headers,
                        ..
                    } => {
                        let reply = Frame::SynReply {
                            stream_id,
                            fin: false,
                            headers: Vec::new(),
                        };
                        if replies.send(Out::Frame(reply)).await.is_err() {
                            break 'read;
                        }
                        let (tx, data) = mpsc::channel(16);
                        if !fin {
                            streams.insert(stream_id, tx);
                        }
                        let stream = Stream {
                            id: stream_id,
                            headers,
                            data,
                        };
                        if streams_tx.send(stream).await.is_err() {
                            break 'read;
                        }
                    }
                    Frame::Data { stream_id, fin, data } => {
                        if !data.is_empty()
                            && let Some(tx) = streams.get(&stream_id)
                            && tx.send(data).await.is_err()
                        {
                            streams.remove(&stream_id);
                        }
                        if fin {
                            streams.remove(&stream_id);
                        }
                    }
                    Frame::RstStream { stream_id, .. } => {
                        streams.remove(&stream_id);
                    }
                    Frame::Ping { id } => {
                        let Ok(()) = replies.send(Out::Frame(Frame::Ping { id })).await else {
                            break 'read;
                        };
                    }
                    Frame::GoAway { .. } => break 'read,
                    Frame::Headers {
                        stream_id, fin: true, ..
                    } => {
                        streams.remove(&stream_id);
                    }
                    _ => {}
                }
            }
        }
    });
    (streams_rx, writer)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Reads from `io` until the decoder yields a frame.
    async fn next_frame(io: &mut tokio::io::DuplexStream, decoder: &mut Decoder) -> Frame {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(frame) = decoder.next_frame().unwrap() {
                return frame;
            }
            let n = io.read(&mut buf).await.unwrap();
            assert!(n > 0, "the session closed");
            decoder.feed(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn streams_are_accepted_and_carry_data_both_ways() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let (mut streams, writer) = start(crate::streaming::raw_transport(server));
        let (mut encoder, mut decoder) = (Encoder::default(), Decoder::default());
        let syn = Frame::SynStream {
            stream_id: 1,
            associated: 0,
            priority: 0,
            fin: false,
            headers: vec![("streamtype".into(), "stdin".into())],
        };
        client.write_all(&encoder.encode(&syn)).await.unwrap();
        assert_eq!(
            next_frame(&mut client, &mut decoder).await,
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: vec![]
            }
        );
        let mut stream = streams.recv().await.unwrap();
        assert_eq!(stream.header("streamType"), Some("stdin"));
        let data = Frame::Data {
            stream_id: 1,
            fin: true,
            data: b"hello".to_vec(),
        };
        client.write_all(&encoder.encode(&data)).await.unwrap();
        assert_eq!(stream.data.recv().await.unwrap(), b"hello");
        // FIN ends the stream's data.
        assert_eq!(stream.data.recv().await, None);

        client
            .write_all(&encoder.encode(&Frame::Ping { id: 7 }))
            .await
            .unwrap();
        assert_eq!(next_frame(&mut client, &mut decoder).await, Frame::Ping { id: 7 });
        writer.data(1, b"back").await.unwrap();
        writer.fin(1).await.unwrap();
        assert_eq!(
            next_frame(&mut client, &mut decoder).await,
            Frame::Data {
                stream_id: 1,
                fin: false,
                data: b"back".to_vec()
            }
        );
        assert_eq!(
            next_frame(&mut client, &mut decoder).await,
            Frame::Data {
                stream_id: 1,
                fin: true,
                data: vec![]
            }
        );
        writer.close().await;
        assert!(matches!(
            next_frame(&mut client, &mut decoder).await,
            Frame::GoAway { last_good: 1, .. }
        ));
    }
}
