//! Forwarding names outside the cluster zones to upstream servers, as CoreDNS's `forward`
//! plugin: UDP first (TCP when the client came over TCP, or the UDP answer was truncated), a
//! timeout per try, and failover from one upstream to the next, starting at a different one per
//! query (round-robin).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream gets to answer before the next is tried.
const TRY_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer accepted over UDP (EDNS buffers larger than this are not advertised by
/// clients in practice).
const UDP_BUFFER: usize = 65535;

pub(crate) struct Forwarder {
    upstreams: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>) -> Forwarder {
        Forwarder {
            upstreams,
            next: AtomicUsize::new(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }

    /// Sends `query` (a whole encoded DNS message) upstream and returns the first answer any
    /// upstream gives; an error when none answered.
    pub async fn exchange(&self, query: &[u8], tcp: bool) -> anyhow::Result<Message> {
        if query.len() < 12 {
            bail!("not a DNS message");
        }
        let id = u16::from_be_bytes([query[0], query[1]]);
        let n = self.upstreams.len();
        if n == 0 {
            bail!("no upstream servers");
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last_error = None;
        for i in 0..n {
            let upstream = self.upstreams[(start + i) % n];
            match tokio::time::timeout(TRY_TIMEOUT, exchange_with(upstream, query, tcp)).await {
                Ok(Ok(answer)) if answer.metadata.id == id => return Ok(answer),
                Ok(Ok(_)) => last_error = Some(anyhow::anyhow!("{upstream}: mismatched id")),
                Ok(Err(error)) => last_error = Some(error.context(upstream)),
                Err(_) => last_error = Some(anyhow::anyhow!("{upstream}: timed out")),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no upstream answered")))
    }
}

async fn exchange_with(upstream: SocketAddr, query: &[u8], tcp: bool) -> anyhow::Result<Message> {
    if !tcp {
        let answer = exchange_udp(upstream, query).await?;
        if !answer.metadata.truncation {
            return Ok(answer);
        }
    }
    exchange_tcp(upstream, query).await
}

async fn exchange_udp(upstream: SocketAddr, query: &[u8]) -> anyhow::Result<Message> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buffer = vec![0; UDP_BUFFER];
    loop {
        let len = socket.recv(&mut buffer).await?;
        // A stray datagram (not a DNS message, or another id) is skipped, not fatal.
        if let Ok(answer) = Message::from_vec(&buffer[..len])
            && answer.metadata.id == u16::from_be_bytes([query[0], query[1]])
        {
            return Ok(answer);
        }
    }
}

async fn exchange_tcp(upstream: SocketAddr, query: &[u8]) -> anyhow::Result<Message> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).context("query too large")?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await? as usize;
    let mut buffer = vec![0; len];
    stream.read_exact(&mut buffer).await?;
    Ok(Message::from_vec(&buffer)?)
}
