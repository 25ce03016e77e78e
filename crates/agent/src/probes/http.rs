//! The httpGet handler, as upstream's `pkg/probe/http` and the lifecycle handler runner: a GET
//! over HTTP or HTTPS (certificates not verified) with `User-Agent: kube-probe/1.33` (hooks:
//! `kube-lifecycle/1.33`) and `Accept: */*` unless the handler sets them, `Connection: close`.
//! Probes succeed on 2xx and 3xx; they follow redirects to the same host name (at most 10) and
//! stop at one to another host, which succeeds with a `ProbeWarning`. Errors are worded as Go's
//! `http.Client` words them (`Get "http://10.1.0.5:80/": dial tcp …`).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::handler::{pod_ip, resolve, resolve_port};
use super::{KUBE_VERSION, Outcome, Purpose, Target};

/// How much of a body is read (upstream's `maxRespBodyLength`, 10 KiB).
const MAX_BODY: usize = 10 * 1024;
/// Redirects followed before giving up (Go's default).
const MAX_REDIRECTS: usize = 10;
/// What Go's transport says when an HTTPS request meets a plain HTTP server; lifecycle hooks
/// retry over HTTP on it.
pub(crate) const HTTP_TO_HTTPS: &str = "http: server gave HTTP response to HTTPS client";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Url {
    pub scheme: String,
    /// An IP address (no brackets) or a name.
    pub host: String,
    pub port: u16,
    /// As written (may be empty: the request asks for `/`).
    pub path: String,
    pub query: Option<String>,
}

impl Url {
    fn request_target(&self) -> String {
        let mut target = if self.path.starts_with('/') {
            self.path.clone()
        } else {
            format!("/{}", self.path)
        };
        if let Some(query) = &self.query {
            target.push('?');
            target.push_str(query);
        }
        target
    }

    pub(crate) fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `Location` resolved against this URL (absolute, scheme-relative, absolute or relative
    /// path).
    fn join(&self, location: &str) -> Option<Url> {
        let location = location.split('#').next().unwrap_or_default();
        if let Some((scheme, rest)) = location.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return None;
            }
            return Self::parse_authority_and_path(&scheme, rest);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Self::parse_authority_and_path(&self.scheme, rest);
        }
        let (path, query) = split_query(location);
        let path = if path.starts_with('/') {
            path.to_owned()
        } else if path.is_empty() {
            self.path.clone()
        } else {
            let base = self.request_target();
            let base = base.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{path}")
        };
        let query = if location.is_empty() {
            self.query.clone()
        } else {
            query
        };
        Some(Url {
            path,
            query,
            ..self.clone()
        })
    }

    fn parse_authority_and_path(scheme: &str, rest: &str) -> Option<Url> {
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        let default_port = if scheme == "https" { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None => default_port,
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), port.parse().ok()?),
                None => (authority.to_owned(), default_port),
            }
        };
        let (path, query) = split_query(tail);
        Some(Url {
            scheme: scheme.to_owned(),
            host,
            port,
            path: path.to_owned(),
            query,
        })
    }
}

impl fmt::Display for Url {
    /// As Go's `url.URL.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host_port())?;
        if !self.path.is_empty() && !self.path.starts_with('/') {
            f.write_str("/")?;
        }
        f.write_str(&self.path)?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

fn split_query(s: &str) -> (&str, Option<String>) {
    match s.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (s, None),
    }
}

/// A GET request built from an httpGet action (upstream's `NewRequestForHTTPGetAction`).
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub url: Url,
    /// Header names canonicalized as Go's `http.Header`; order kept.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn build(
        action: &HTTPGetAction,
        purpose: Purpose,
        container: &Container,
        target: &Target,
    ) -> Result<Request, String> {
        let scheme = action
            .scheme
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("http")
            .to_ascii_lowercase();
        let port = resolve_port(&action.port, container)?;
        let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
            Some(host) => host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            None => pod_ip(target, port)?.to_string(),
        };
        let path = action.path.clone().unwrap_or_default();
        let path = path.split('#').next().unwrap_or_default();
        let (path, query) = split_query(path);
        let mut headers: Vec<(String, String)> = action
            .http_headers
            .iter()
            .flatten()
            .map(|h| (canonical_header(&h.name), h.value.clone()))
            .collect();
        let has = |headers: &[(String, String)], name: &str| headers.iter().any(|(n, _)| n == name);
        if !has(&headers, "User-Agent") {
            let purpose = match purpose {
                Purpose::Probe => "probe",
                Purpose::Lifecycle => "lifecycle",
            };
            headers.push(("User-Agent".into(), format!("kube-{purpose}/{KUBE_VERSION}")));
        }
        if !has(&headers, "Accept") {
            headers.push(("Accept".into(), "*/*".into()));
        } else if headers
            .iter()
            .find(|(n, _)| n == "Accept")
            .is_some_and(|(_, v)| v.is_empty())
        {
            // An empty Accept removes the header.
            headers.retain(|(n, _)| n != "Accept");
        }
        Ok(Request {
            url: Url {
                scheme,
                host,
                port,
                path: path.to_owned(),
                query,
            },
            headers,
        })
    }
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-custom-header` → `X-Custom-Header` (names
/// with characters outside a token are left alone).
fn canonical_header(name: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(token) {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

pub(crate) struct Response {
    pub status: u16,
    pub body: String,
}

/// An httpGet probe: 2xx succeeds with the body, 3xx (a redirect not followed) succeeds with a
/// warning, anything else fails with `HTTP probe failed with statuscode: N`; transport errors
/// and timeouts fail with Go's error text.
pub(crate) async fn probe(
    action: &HTTPGetAction,
    purpose: Purpose,
    container: &Container,
    target: &Target,
    timeout: Option<Duration>,
) -> Outcome {
    let request = match Request::build(action, purpose, container, target) {
        Ok(request) => request,
        Err(err) => return Outcome::Error(err),
    };
    let response = match get(&request, purpose, target, timeout).await {
        Ok(response) => response,
        Err(err) => return Outcome::Failure(err),
    };
    match response.status {
        200..=299 => Outcome::Success(response.body),
        300..=399 => Outcome::Warning(format!(
            "Probe terminated redirects, Response body: {}",
            response.body
        )),
        code => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
    }
}

/// Sends the request, following redirects as the purpose's client does, within `timeout`
/// (probes: `timeoutSeconds`; hooks: none).
pub(crate) async fn get(
    request: &Request,
    purpose: Purpose,
    target: &Target,
    timeout: Option<Duration>,
) -> Result<Response, String> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let original_host = request.url.host.clone();
    let mut url = request.url.clone();
    let mut headers = request.headers.clone();
    let mut redirects = 0;
    loop {
        let attempt = once(&url, &headers, target, deadline);
        let result = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, attempt).await {
                Ok(result) => result,
                Err(_) => {
                    Err("context deadline exceeded (Client.Timeout exceeded while awaiting headers)".into())
                }
            },
            None => attempt.await,
        };
        let (status, location, body) = result.map_err(|err| format!("Get \"{url}\": {err}"))?;
        let redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
        let next = location
            .filter(|_| redirect)
            .and_then(|l| url.join(&l).map(|u| (l, u)));
        let Some((location, next)) = next else {
            return Ok(Response { status, body });
        };
        // Probes stop at a redirect to another host: the 3xx is the answer.
        if purpose == Purpose::Probe && next.host != original_host {
            return Ok(Response { status, body });
        }
        redirects += 1;
        if redirects >= MAX_REDIRECTS {
            return Err(format!("Get \"{next}\": stopped after {MAX_REDIRECTS} redirects"));
        }
        let absolute = location.contains("://") || location.starts_with("//");
        if next.host != url.host {
            headers.retain(|(n, _)| {
                !matches!(
                    n.as_str(),
                    "Authorization" | "Www-Authenticate" | "Cookie" | "Cookie2"
                )
            });
        }
        if absolute {
            // A Host override survives relative redirects only (as Go's client).
            headers.retain(|(n, _)| n != "Host");
        }
        url = next;
    }
}

/// One request on a fresh connection: status, `Location`, the start of the body.
async fn once(
    url: &Url,
    headers: &[(String, String)],
    target: &Target,
    deadline: Option<Instant>,
) -> Result<(u16, Option<String>, String), String> {
    let addr = resolve(&url.host, url.port).await?;
    let dial_timeout = deadline.map_or(Duration::from_secs(30), |d| {
        d.saturating_duration_since(Instant::now())
    });
    let tcp = super::dial::dial(addr, target.netns.as_deref(), dial_timeout).await?;
    match url.scheme.as_str() {
        "http" => exchange(tcp, url, headers).await,
        "https" => {
            let name =
                rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| format!("tls: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config())
                .connect(name, tcp)
                .await
                .map_err(|e| tls_error(&e))?;
            exchange(tls, url, headers).await
        }
        other => Err(format!("unsupported protocol scheme {}", super::go_quote(other))),
    }
}

async fn exchange<S>(
    stream: S,
    url: &Url,
    headers: &[(String, String)],
) -> Result<(u16, Option<String>, String), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Header names go out in Go's canonical case, as kubelet's do.
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| hyper_error(&e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut builder = hyper::Request::get(url.request_target());
    let host = headers
        .iter()
        .find(|(n, _)| n == "Host")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| url.host_port());
    builder = builder.header(http::header::HOST, host);
    for (name, value) in headers.iter().filter(|(n, _)| n != "Host") {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder = builder.header(http::header::CONNECTION, "close");
    let request = builder
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("net/http: invalid request: {e}"))?;
    let response = sender.send_request(request).await.map_err(|e| hyper_error(&e))?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = response.into_body();
    let mut kept = Vec::new();
    while kept.len() < MAX_BODY {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = MAX_BODY - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Some(Err(e)) => return Err(hyper_error(&e)),
            None => break,
        }
    }
    Ok((status, location, String::from_utf8_lossy(&kept).into_owned()))
}

fn hyper_error(e: &hyper::Error) -> String {
    if e.is_incomplete_message() {
        "EOF".into()
    } else if e.is_parse() {
        format!("net/http: HTTP/1.x transport connection broken: malformed HTTP response ({e})")
    } else {
        e.to_string()
    }
}

fn tls_error(e: &std::io::Error) -> String {
    let invalid_content = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
            )
        });
    if invalid_content {
        HTTP_TO_HTTPS.into()
    } else {
        format!("tls: {e}")
    }
}

/// TLS without certificate verification (upstream's probe transport sets
/// `InsecureSkipVerify`); handshake signatures are still checked.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(images::registry::SkipVerification::new(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        let (scheme, rest) = s.split_once("://").unwrap();
        Url::parse_authority_and_path(scheme, rest).unwrap()
    }

    #[test]
    fn urls_print_as_go() {
        assert_eq!(url("http://10.0.0.1:80").to_string(), "http://10.0.0.1:80");
        assert_eq!(
            url("http://[fd00::1]:8080/a?b=c").to_string(),
            "http://[fd00::1]:8080/a?b=c"
        );
        assert_eq!(url("http://10.0.0.1:80").request_target(), "/");
    }

    #[test]
    fn redirects_resolve_against_the_current_url() {
        let base = url("http://10.0.0.1:80/a/b?x=1");
        assert_eq!(base.join("/c").unwrap().to_string(), "http://10.0.0.1:80/c");
        assert_eq!(
            base.join("c?y=2").unwrap().to_string(),
            "http://10.0.0.1:80/a/c?y=2"
        );
        assert_eq!(
            base.join("https://10.0.0.2/d").unwrap().to_string(),
            "https://10.0.0.2:443/d"
        );
        assert_eq!(base.join("//10.0.0.3:81/e").unwrap().host, "10.0.0.3");
        assert!(base.join("ftp://x/y").is_none());
    }

    #[test]
    fn header_names_canonical_as_go() {
        assert_eq!(canonical_header("x-custom-HEADER"), "X-Custom-Header");
        assert_eq!(canonical_header("user-agent"), "User-Agent");
        assert_eq!(canonical_header("bad header"), "bad header");
    }
}
