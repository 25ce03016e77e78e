//! WebSocket (RFC 6455) as the kubelet's streaming endpoints speak it: the server's handshake
//! answer and the framing (server frames unmasked, client frames masked; fragmented messages
//! reassembled; ping answered by the caller). No extensions.

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Messages larger than this end the connection (kubectl sends 32 KiB chunks).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{}{ACCEPT_GUID}", key.trim()).as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Whether a request asks for a WebSocket upgrade.
pub fn is_upgrade(headers: &http::HeaderMap) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    has(http::header::CONNECTION, "upgrade") && has(http::header::UPGRADE, "websocket")
}

/// The subprotocols a client offers, in its order.
pub fn offered_protocols(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    Continuation = 0,
    Text = 1,
    Binary = 2,
    Close = 8,
    Ping = 9,
    Pong = 10,
}

impl Opcode {
    fn from_u8(b: u8) -> Option<Opcode> {
        Some(match b {
            0 => Opcode::Continuation,
            1 => Opcode::Text,
            2 => Opcode::Binary,
            8 => Opcode::Close,
            9 => Opcode::Ping,
            10 => Opcode::Pong,
            _ => return None,
        })
    }
}

/// A whole message (data messages reassembled from their fragments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub opcode: Opcode,
    pub data: Vec<u8>,
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_owned())
}

/// Reads messages; control frames come back as they arrive, even between fragments.
pub struct Reader<R> {
    inner: R,
    partial: Option<Message>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader { inner, partial: None }
    }

    /// The next message; `None` at a clean end of the stream.
    pub async fn next(&mut self) -> std::io::Result<Option<Message>> {
        loop {
            let mut head = [0u8; 2];
            match self.inner.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            let fin = head[0] & 0x80 != 0;
            let opcode = Opcode::from_u8(head[0] & 0x0f).ok_or_else(|| invalid("unknown opcode"))?;
            let masked = head[1] & 0x80 != 0;
            let len = match head[1] & 0x7f {
                126 => u64::from(self.inner.read_u16().await?),
                127 => self.inner.read_u64().await?,
                n => u64::from(n),
            };
            if len > MAX_MESSAGE as u64 {
                return Err(invalid("message too large"));
            }
            let mut mask = [0u8; 4];
            if masked {
                self.inner.read_exact(&mut mask).await?;
            }
            let mut data = vec![0u8; len as usize];
            self.inner.read_exact(&mut data).await?;
            if masked {
                for (i, b) in data.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
            }
            match opcode {
                Opcode::Close | Opcode::Ping | Opcode::Pong => return Ok(Some(Message { opcode, data })),
                Opcode::Continuation => {
                    let partial = self
                        .partial
                        .as_mut()
                        .ok_or_else(|| invalid("continuation without a message"))?;
                    if partial.data.len() + data.len() > MAX_MESSAGE {
                        return Err(invalid("message too large"));
                    }
                    partial.data.extend_from_slice(&data);
                }
                Opcode::Text | Opcode::Binary => self.partial = Some(Message { opcode, data }),
            }
            if fin && let Some(message) = self.partial.take() {
                return Ok(Some(message));
            }
        }
    }
}

/// Writes frames, one unfragmented frame a message; `mask` for the client side.
pub struct Writer<W> {
    inner: W,
    mask: bool,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn server(inner: W) -> Self {
        Writer { inner, mask: false }
    }

    pub fn client(inner: W) -> Self {
        Writer { inner, mask: true }
    }

    pub async fn send(&mut self, opcode: Opcode, data: &[u8]) -> std::io::Result<()> {
        let frame = encode_frame(opcode, data, self.mask.then(rand_mask));
        self.inner.write_all(&frame).await?;
        self.inner.flush().await
    }

    /// A close frame with a status code (1000: normal).
    pub async fn close(&mut self, code: u16) -> std::io::Result<()> {
        self.send(Opcode::Close, &code.to_be_bytes()).await?;
        self.inner.shutdown().await
    }
}

fn rand_mask() -> [u8; 4] {
    let mut mask = [0u8; 4];
    // A failing system RNG leaves a zero mask: still a valid frame.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut mask);
    mask
}

pub fn encode_frame(opcode: Opcode, data: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut frame = Vec::with_capacity(data.len() + 14);
    frame.push(0x80 | opcode as u8);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match data.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            frame.extend_from_slice(&mask);
            frame.extend(data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => frame.extend_from_slice(data),
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn masked_fragments_reassemble_and_control_frames_pass_between() {
        let mut bytes = Vec::new();
        let mut first = encode_frame(Opcode::Binary, b"hel", Some([1, 2, 3, 4]));
        first[0] &= 0x7f; // not FIN
        bytes.extend(first);
        bytes.extend(encode_frame(Opcode::Ping, b"p", Some([9, 9, 9, 9])));
        bytes.extend(encode_frame(Opcode::Continuation, b"lo", Some([5, 6, 7, 8])));
        let long = vec![7u8; 70000];
        bytes.extend(encode_frame(Opcode::Text, &long, None));
        let mut reader = Reader::new(&bytes[..]);
        let ping = reader.next().await.unwrap().unwrap();
        assert_eq!((ping.opcode, ping.data), (Opcode::Ping, b"p".to_vec()));
        let msg = reader.next().await.unwrap().unwrap();
        assert_eq!((msg.opcode, msg.data), (Opcode::Binary, b"hello".to_vec()));
        let msg = reader.next().await.unwrap().unwrap();
        assert_eq!((msg.opcode, msg.data.len()), (Opcode::Text, 70000));
        assert_eq!(reader.next().await.unwrap(), None);
    }

    #[test]
    fn server_frames_are_unmasked_with_extended_lengths() {
        assert_eq!(encode_frame(Opcode::Binary, b"\x01hi", None), b"\x82\x03\x01hi");
        let frame = encode_frame(Opcode::Binary, &[0; 300], None);
        assert_eq!(&frame[..4], &[0x82, 126, 0x01, 0x2c]);
    }
}
