//! HTTP to registries: hyper's client over rustls (plain http for `http://` endpoints), one
//! `Endpoint` per place a pull may read from, which answers authentication challenges and
//! follows redirects (blob downloads are often redirected to a CDN; credentials stay behind).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::auth::{Authorizer, Credentials, parse_challenges};
use super::config::{EndpointSpec, TlsConfig};
use super::{Failure, PullErrorKind};

pub(crate) type Http = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a registry may take to answer, or to send the next piece of a body.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: usize = 10;
const USER_AGENT: &str = concat!("rkube/", env!("CARGO_PKG_VERSION"));

/// A client whose TLS trusts the system's roots plus `tls`'s CA file (or anything, when told to
/// skip verification). Clients belong to the runtime they were made on, so each pull makes its own.
pub(crate) fn http_client(tls: &TlsConfig) -> Result<Http, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerification(provider)))
    } else {
        let mut roots = (*system_roots()).clone();
        if let Some(ca_file) = &tls.ca_file {
            for cert in read_pem_certs(ca_file)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca_file.display()))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_pem_certs(cert)?, read_pem_key(key)?)
            .map_err(|e| format!("{}: {e}", cert.display()))?,
        _ => builder.with_no_client_auth(),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// The system's trusted roots, read once.
fn system_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!("reading the system's CA certificates: {error}");
            }
            roots.add_parsable_certificates(found.certs);
            Arc::new(roots)
        })
        .clone()
}

fn read_pem_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn read_pem_key(path: &std::path::Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no PEM private key", path.display()))
}

/// `insecure_skip_verify`: any certificate is accepted (signatures are still checked, so the
/// handshake stays well-formed). Also what a joining node agent reads the cluster CA with,
/// before it checks it against its token.
#[derive(Debug)]
pub struct SkipVerification(Arc<rustls::crypto::CryptoProvider>);

impl SkipVerification {
    pub fn new(provider: Arc<rustls::crypto::CryptoProvider>) -> SkipVerification {
        SkipVerification(provider)
    }
}

impl rustls::client::danger::ServerCertVerifier for SkipVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Sends a request, worded as Go's HTTP client words failures (`Get "URL": dial tcp …`).
pub(crate) async fn send(http: &Http, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, Failure> {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let fail = |detail: String| Failure {
        kind: PullErrorKind::Unavailable,
        message: format!("{} \"{uri}\": {detail}", go_method(&method)),
    };
    match tokio::time::timeout(IDLE_TIMEOUT, http.request(request)).await {
        Err(_) => Err(fail("timeout awaiting response headers".into())),
        Ok(Err(e)) => Err(fail(transport_error(&e, &uri))),
        Ok(Ok(response)) => Ok(response),
    }
}

/// `Get`, `Head`, `Post`: how Go's url.Error names the operation.
fn go_method(method: &Method) -> String {
    let name = method.as_str();
    let mut out = name[..1].to_owned();
    out.push_str(&name[1..].to_ascii_lowercase());
    out
}

/// The innermost cause of a client error, as Go's dialer would say it when it is a dial error.
fn transport_error(error: &hyper_util::client::legacy::Error, uri: &Uri) -> String {
    let mut innermost: &dyn std::error::Error = error;
    let mut chain = vec![error.to_string()];
    while let Some(source) = innermost.source() {
        chain.push(source.to_string());
        innermost = source;
    }
    if let Some(io) = innermost.downcast_ref::<std::io::Error>() {
        let address = match uri.port_u16() {
            Some(_) => uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            None => format!(
                "{}:{}",
                uri.host().unwrap_or_default(),
                if uri.scheme_str() == Some("http") { 80 } else { 443 }
            ),
        };
        let cause = match io.kind() {
            std::io::ErrorKind::ConnectionRefused => Some("connection refused"),
            std::io::ErrorKind::TimedOut => Some("i/o timeout"),
            std::io::ErrorKind::HostUnreachable => Some("no route to host"),
            std::io::ErrorKind::NetworkUnreachable => Some("network is unreachable"),
            _ => None,
        };
        if error.is_connect()
            && let Some(cause) = cause
        {
            return format!("dial tcp {address}: connect: {cause}");
        }
    }
    chain.dedup();
    chain.join(": ")
}

/// containerd's wording of a status it did not expect.
pub(crate) fn unexpected_status(method: &Method, url: &str, status: StatusCode) -> String {
    format!(
        "unexpected status from {method} request to {url}: {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
}

/// A response body, at most `limit` bytes, each piece arriving within the idle timeout.
pub(crate) async fn read_body(response: Response<Incoming>, limit: usize) -> Result<Bytes, Failure> {
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = next_frame(&mut body).await? {
        out.extend_from_slice(&frame);
        if out.len() > limit {
            return Err(Failure {
                kind: PullErrorKind::Invalid,
                message: format!("response larger than {limit} bytes"),
            });
        }
    }
    Ok(out.into())
}

/// The next data of a body (trailers skipped), None at its end.
pub(crate) async fn next_frame(body: &mut Incoming) -> Result<Option<Bytes>, Failure> {
    loop {
        let frame = tokio::time::timeout(IDLE_TIMEOUT, body.frame())
            .await
            .map_err(|_| Failure {
                kind: PullErrorKind::Unavailable,
                message: format!("no data received for {IDLE_TIMEOUT:?}"),
            })?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => {
                return Err(Failure {
                    kind: PullErrorKind::Unavailable,
                    message: format!("reading response body: {e}"),
                });
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// One place a pull reads from: a registry endpoint, its client and its authorization (cloned
/// for concurrent downloads, which then share the client's connections and the token so far).
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub spec: EndpointSpec,
    /// The repository as this endpoint names it (after rewrites).
    pub repository: String,
    http: Http,
    auth: Authorizer,
}

impl Endpoint {
    /// `credentials` (from pull secrets) win over the endpoint's configured auth.
    pub fn new(
        spec: EndpointSpec,
        repository: &str,
        credentials: Option<Credentials>,
    ) -> Result<Endpoint, String> {
        let credentials = match credentials {
            Some(c) => Some(c),
            None => match &spec.config.auth {
                Some(auth) => auth
                    .credentials()
                    .map_err(|e| format!("registry config for {}: {e}", spec.host))?,
                None => None,
            },
        };
        let http = http_client(&spec.config.tls.clone().unwrap_or_default())
            .map_err(|e| format!("TLS configuration for {}: {e}", spec.host))?;
        Ok(Endpoint {
            repository: spec.repository(repository),
            spec,
            http,
            auth: Authorizer::new(credentials),
        })
    }

    /// The URL of `kind/object` (`manifests/1.36`, `blobs/sha256:…`) of the repository here.
    pub fn url(&self, kind: &str, object: &str) -> String {
        format!("{}/{}/{kind}/{object}", self.spec.base_url(), self.repository)
    }

    /// GETs `url`, answering one round of authentication challenges and following redirects.
    /// Statuses are the caller's to judge, except an authorization the registry keeps refusing
    /// with a reason, which fails as containerd's "pull access denied".
    pub async fn get(&mut self, url: &str, accept: Option<&str>) -> Result<Response<Incoming>, Failure> {
        let mut url = url.to_owned();
        let mut answered = false;
        let mut redirects = 0;
        let origin = self.spec.host.clone();
        loop {
            let uri: Uri = url.parse().map_err(|e| Failure {
                kind: PullErrorKind::Invalid,
                message: format!("invalid URL {url:?}: {e}"),
            })?;
            let same_origin = uri.authority().is_some_and(|a| a.as_str() == origin);
            let mut request = Request::get(uri.clone()).header(header::USER_AGENT, USER_AGENT);
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            if same_origin && let Some(authorization) = self.auth.header() {
                request = request.header(header::AUTHORIZATION, authorization);
            }
            let request = request.body(Full::new(Bytes::new())).expect("valid request");
            let response = send(&self.http, request).await?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && same_origin {
                let challenges = parse_challenges(
                    response
                        .headers()
                        .get_all(header::WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok()),
                );
                if !answered {
                    answered = true;
                    if self
                        .auth
                        .answer(&self.http, &challenges, &self.repository)
                        .await?
                    {
                        continue;
                    }
                } else if let Some(error) = challenges
                    .iter()
                    .find(|c| c.scheme == "bearer")
                    .and_then(|c| c.param("error"))
                {
                    return Err(Failure {
                        kind: PullErrorKind::Unauthorized,
                        message: format!(
                            "pull access denied, repository does not exist or may require authorization: server message: {error}: authorization failed"
                        ),
                    });
                }
                return Ok(response);
            }
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or_default();
                redirects += 1;
                if location.is_empty() || redirects > MAX_REDIRECTS {
                    return Ok(response);
                }
                url = resolve_location(&uri, location);
                continue;
            }
            return Ok(response);
        }
    }
}

/// A `Location` header's target (absolute, or relative to the request).
fn resolve_location(base: &Uri, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
    format!("{scheme}://{authority}{dir}/{location}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_against_the_request() {
        let base: Uri = "http://127.0.0.1:5000/v2/library/busybox/blobs/sha256:ab"
            .parse()
            .unwrap();
        assert_eq!(
            resolve_location(&base, "https://cdn/x?sig=1"),
            "https://cdn/x?sig=1"
        );
        assert_eq!(
            resolve_location(&base, "/storage/1"),
            "http://127.0.0.1:5000/storage/1"
        );
        assert_eq!(resolve_location(&base, "//cdn/y"), "http://cdn/y");
        assert_eq!(
            resolve_location(&base, "other"),
            "http://127.0.0.1:5000/v2/library/busybox/blobs/other"
        );
    }

    #[tokio::test]
    async fn refused_connections_read_as_go_dial_errors() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http = http_client(&TlsConfig::default()).unwrap();
        let url = format!("http://127.0.0.1:{port}/v2/");
        let request = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
        let failure = send(&http, request).await.unwrap_err();
        assert_eq!(failure.kind, PullErrorKind::Unavailable);
        assert_eq!(
            failure.message,
            format!("Get \"{url}\": dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
    }
}
