//! Joining a cluster with its join token, as k3s agents do: the token
//! `K10<sha256 of the CA PEM>::server:<secret>` names the CA to trust, so the agent reads the CA
//! from `/cacerts` without trusting anything yet, checks its hash, and only then, over a
//! connection verified against that CA, sends the token to get a client certificate for
//! `system:node:<name>`.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// What a joined node connects with.
pub struct Credentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// Whether the token pinned the CA (a bare secret trusts whatever CA the server shows).
    pub ca_pinned: bool,
}

/// A join token: the CA hash it pins (absent in a bare secret) and the whole token.
#[derive(Debug, PartialEq, Eq)]
pub struct Token {
    ca_hash: Option<String>,
    token: String,
}

impl Token {
    pub fn parse(text: &str) -> anyhow::Result<Token> {
        let token = text.trim();
        if token.is_empty() || token.contains(char::is_whitespace) {
            bail!("the join token is empty or has spaces");
        }
        let ca_hash = match token.strip_prefix("K10") {
            Some(rest) => {
                let (hash, _) = rest
                    .split_once("::")
                    .context("the join token is not in the form K10<ca-hash>::server:<secret>")?;
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!("the join token's CA hash is not a SHA-256 hex digest");
                }
                Some(hash.to_ascii_lowercase())
            }
            None => None,
        };
        Ok(Token {
            ca_hash,
            token: token.to_owned(),
        })
    }
}

/// The scheme-less `host:port` of an `https://` server URL, and the host.
fn authority(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("https://")
        .with_context(|| format!("the server URL {url:?} must start with https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse::<u16>().ok()),
        _ => (authority, Some(443)),
    };
    let port = port.with_context(|| format!("the server URL {url:?} has a bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("the server URL {url:?} has no host");
    }
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok((address, host.to_owned()))
}

/// The server's host as an address, if it is one (the node IP defaults to the address that
/// reaches it).
pub fn server_ip(url: &str) -> Option<IpAddr> {
    authority(url).ok()?.1.parse().ok()
}

/// Joins the server at `url` as `node_name`; errors read as one line for the operator.
pub async fn join(url: &str, token: &Token, node_name: &str) -> anyhow::Result<Credentials> {
    let (address, host) = authority(url)?;
    let (status, ca_pem) = get(&address, &host, "/cacerts", &[], insecure_config()?)
        .await
        .with_context(|| format!("cannot reach the server at {url}"))?;
    if status != 200 || !ca_pem.contains("BEGIN CERTIFICATE") {
        bail!(
            "the server at {url} serves no CA certificate at /cacerts (HTTP {status}): is it an rkube server?"
        );
    }
    let hash = hex(ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes()).as_ref());
    match &token.ca_hash {
        Some(want) if *want != hash => bail!(
            "the CA certificate of the server at {url} does not match the join token's CA hash: not trusting it (wrong token, or not the server that issued it)"
        ),
        _ => {}
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("node:{}", token.token));
    let headers = [
        ("Authorization", format!("Basic {basic}")),
        ("rkube-Node-Name", node_name.to_owned()),
    ];
    let (status, pem) = get(
        &address,
        &host,
        "/v1-rkube/client-kubelet.crt",
        &headers,
        verified_config(&ca_pem)?,
    )
    .await
    .with_context(|| format!("cannot reach the server at {url}"))?;
    match status {
        200 => {}
        401 => bail!("the server at {url} refused the join token (401 Unauthorized): check --token-file"),
        _ => bail!(
            "the server at {url} refused to issue a certificate for node {node_name:?} (HTTP {status}): {}",
            status_message(&pem)
        ),
    }
    let key_at = pem
        .find("-----BEGIN PRIVATE KEY-----")
        .context("the server's node certificate comes without its key")?;
    Ok(Credentials {
        ca_pem,
        cert_pem: pem[..key_at].to_owned(),
        key_pem: pem[key_at..].to_owned(),
        ca_pinned: token.ca_hash.is_some(),
    })
}

/// The message of a Kubernetes Status body, or the body.
fn status_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned())
}

/// One HTTP/1.1 GET over TLS (`Connection: close`): the status code and the body.
async fn get(
    address: &str,
    host: &str,
    path: &str,
    headers: &[(&str, String)],
    tls: Arc<ClientConfig>,
) -> anyhow::Result<(u16, String)> {
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(host.to_owned()).context("bad host name")?,
    };
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .context("connection timed out")??;
    let mut stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await?;
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: rkube-agent\r\n");
    for (header, value) in headers {
        request.push_str(&format!("{header}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response).await {
        Ok(_) => {}
        // Servers may close without close_notify; the body is complete by its length.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.into()),
    }
    parse_response(&response)
}

fn parse_response(response: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").context("malformed HTTP response")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status line")?;
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let body = match length {
        Some(n) if n <= body.len() => &body[..n],
        _ => body,
    };
    Ok((status, body.to_owned()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that trusts only the cluster CA `ca_pem`.
fn verified_config(ca_pem: &str) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.context("the server's CA certificate is not valid PEM")?)?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A client that accepts any server certificate: only for reading `/cacerts`, whose answer is
/// checked against the token's hash before anything is trusted or sent.
fn insecure_config() -> anyhow::Result<Arc<ClientConfig>> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(images::registry::SkipVerification::new(provider())))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_urls() {
        let hash = "ab".repeat(32);
        let token = Token::parse(&format!("K10{hash}::server:secret\n")).unwrap();
        assert_eq!(token.ca_hash.as_deref(), Some(hash.as_str()));
        assert_eq!(Token::parse("plainsecret").unwrap().ca_hash, None);
        assert!(Token::parse("K10abc::server:x").is_err());
        assert!(Token::parse("").is_err());
        assert_eq!(
            authority("https://127.0.0.1:6443/").unwrap(),
            ("127.0.0.1:6443".into(), "127.0.0.1".into())
        );
        assert_eq!(
            authority("https://[::1]:6443").unwrap(),
            ("[::1]:6443".into(), "::1".into())
        );
        assert_eq!(authority("https://example.com").unwrap().0, "example.com:443");
        assert!(authority("http://x:1").is_err());
        assert_eq!(server_ip("https://10.1.2.3:6443"), Some([10, 1, 2, 3].into()));
    }

    #[test]
    fn http_responses() {
        let (status, body) =
            parse_response(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 5\r\n\r\nhello world").unwrap();
        assert_eq!((status, body.as_str()), (401, "hello"));
        assert!(parse_response(b"garbage").is_err());
        assert_eq!(
            status_message(r#"{"kind":"Status","message":"bad name"}"#),
            "bad name"
        );
    }
}
