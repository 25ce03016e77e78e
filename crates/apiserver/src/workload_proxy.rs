//! `pods/{name}/proxy/…` and `services/{name}/proxy/…`: kube-apiserver's HTTP proxy to a pod,
//! or to one ready endpoint of a Service (what `kubectl proxy` users, `kubectl cluster-info`'s
//! links and `kubectl get --raw` reach). The id is upstream's `[scheme:]name[:port]`: a pod's
//! port defaults to its first declared container port; a Service's port is a port name, or a
//! number that is mapped to its name, and the address comes from the Service's Endpoints at
//! random, as upstream's `ResourceLocation` picks it. Any method; the body and headers are
//! passed through (WebSocket upgrades too); `https` backends are not verified, as upstream's
//! proxy transport does not verify them. The API server reaches pod addresses through its
//! node's pod network.

use std::sync::Arc;
use std::time::Duration;

use apimachinery::status::ApiError;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::server::{Body, State};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A proxied path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    namespace: String,
    /// `pods` or `services`.
    resource: &'static str,
    /// `[scheme:]name[:port]`.
    id: String,
    /// What follows `/proxy`: empty when nothing does (then the client is redirected to `/`).
    path: String,
}

/// Whether `path` names `pods/{id}/proxy…` or `services/{id}/proxy…`.
pub fn target(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["api", "v1", "namespaces", ns, resource, id, "proxy", rest @ ..] = parts.as_slice() else {
        return None;
    };
    let resource = match *resource {
        "pods" => "pods",
        "services" => "services",
        _ => return None,
    };
    if ns.is_empty() || id.is_empty() {
        return None;
    }
    let decoded = percent_decode(id);
    Some(Target {
        namespace: (*ns).to_owned(),
        resource,
        id: decoded,
        path: if rest.is_empty() {
            String::new()
        } else {
            format!("/{}", rest.join("/"))
        },
    })
}

fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| segment.to_owned())
}

/// Upstream's `SplitSchemeNamePort`: `name`, `name:port` or `scheme:name:port` with scheme
/// `http` or `https` (empty = http).
fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    if name.is_empty() || !matches!(scheme, "" | "http" | "https") {
        return None;
    }
    Some((if scheme.is_empty() { "http" } else { scheme }, name, port))
}

/// Serves a pod or Service proxy request.
pub async fn serve(
    state: &State,
    target: Target,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (scheme, host, port) = match target.resource {
        "pods" => pod_location(state, &target).await?,
        _ => service_location(state, &target).await?,
    };
    if target.path.is_empty() {
        // Upstream redirects an empty path to one ending in '/' (kubernetes#4958).
        let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        let location = format!("{}/{query}", req.uri().path());
        let mut response = Response::new(BodyExt::boxed_unsync(Empty::<Bytes>::new()));
        *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return Ok(response);
    }
    forward(scheme, &host, port, &target.path, req).await
}

/// `(scheme, ip, port)` of a pod: the port named in the id or its first container port.
async fn pod_location(state: &State, target: &Target) -> Result<(&'static str, String, u16), ApiError> {
    let (scheme, name, port) = split_scheme_name_port(&target.id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid pod request {:?}", target.id)))?;
    let pod = crate::kubelet_proxy::get_object(state, "pods", Some(&target.namespace), name).await?;
    let port = if port.is_empty() {
        pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c["ports"][0]["containerPort"].as_u64())
            .map(|p| p.to_string())
            .unwrap_or_default()
    } else {
        port.to_owned()
    };
    let ip = pod["status"]["podIP"].as_str().unwrap_or_default().to_owned();
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(ApiError::bad_request("address not allowed"));
    }
    let port = if port.is_empty() {
        default_port(scheme)
    } else {
        port.parse()
            .map_err(|_| ApiError::bad_request(format!("invalid pod request {:?}", target.id)))?
    };
    Ok((static_scheme(scheme), ip, port))
}

/// `(scheme, ip, port)` of one ready endpoint of a Service, for the port named (or numbered)
/// in the id.
async fn service_location(state: &State, target: &Target) -> Result<(&'static str, String, u16), ApiError> {
    let (scheme, name, port) = split_scheme_name_port(&target.id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid service request {:?}", target.id)))?;
    let mut port_name = port.to_owned();
    if let Ok(number) = port.parse::<u64>() {
        let service =
            crate::kubelet_proxy::get_object(state, "services", Some(&target.namespace), name).await?;
        port_name = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_u64() == Some(number))
            .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
            .ok_or_else(|| {
                ApiError::service_unavailable(format!("no service port {number} found for service {name:?}"))
            })?;
    }
    let endpoints =
        crate::kubelet_proxy::get_object(state, "endpoints", Some(&target.namespace), name).await?;
    let subsets = endpoints["subsets"].as_array().cloned().unwrap_or_default();
    let no_endpoints =
        || ApiError::service_unavailable(format!("no endpoints available for service {name:?}"));
    if subsets.is_empty() {
        return Err(no_endpoints());
    }
    let seed = random_index(subsets.len());
    for i in 0..subsets.len() {
        let subset = &subsets[(seed + i) % subsets.len()];
        let addresses = subset["addresses"].as_array().cloned().unwrap_or_default();
        if addresses.is_empty() {
            continue;
        }
        let Some(port) = subset["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        let address = &addresses[random_index(addresses.len())];
        if let Some(ip) = address["ip"].as_str() {
            return Ok((static_scheme(scheme), ip.to_owned(), port));
        }
    }
    Err(ApiError::service_unavailable(format!(
        "no endpoints available for service {:?}",
        target.id
    )))
}

fn static_scheme(scheme: &str) -> &'static str {
    if scheme == "https" { "https" } else { "http" }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

fn random_index(len: usize) -> usize {
    (u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .unwrap_or_default(),
    ) % len as u64) as usize
}

/// Hop-by-hop headers a proxy does not pass on (RFC 9110 §7.6.1), unless upgrading.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

async fn forward(
    scheme: &str,
    host: &str,
    port: u16,
    path: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let unreachable =
        |err: String| ApiError::service_unavailable(format!("error trying to reach service: {err}"));
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| unreachable(format!("dial tcp {host}:{port}: i/o timeout")))?
        .map_err(|e| unreachable(go_dial_error(host, port, &e)))?;
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let uri = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut builder = Request::builder().method(req.method().clone()).uri(uri);
    for (name, value) in req.headers() {
        let hop = HOP_BY_HOP.contains(&name.as_str());
        if name == header::HOST || name == header::AUTHORIZATION || (hop && !upgrade) {
            continue;
        }
        builder = builder.header(name, value);
    }
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    builder = builder.header(header::HOST, host_header);
    // An upgrade keeps the request to take its connection over; others pass their body on.
    let (body, client): (ProxyBody, _) = if upgrade {
        (
            Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
            Some(req),
        )
    } else {
        (req.into_body().boxed_unsync(), None)
    };
    let backend_req = builder
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut backend = if scheme == "https" {
        let tls = tokio_rustls::TlsConnector::from(insecure_tls())
            .connect(
                rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| unreachable(e.to_string()))?,
                tcp,
            )
            .await
            .map_err(|e| unreachable(format!("tls: {e}")))?;
        send(TokioIo::new(tls), backend_req).await
    } else {
        send(TokioIo::new(tcp), backend_req).await
    }
    .map_err(|e| unreachable(e.to_string()))?;
    if backend.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(mut client) = client
    {
        return Ok(crate::kubelet_proxy::splice_upgrade(&mut backend, &mut client));
    }
    let (parts, body) = backend.into_parts();
    let mut response = Response::new(crate::kubelet_proxy::bridge(body.map_err(|_| ()).boxed_unsync()));
    *response.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response.headers_mut().append(name, value.clone());
        }
    }
    Ok(response)
}

/// Go's wording for a failed connect (`dial tcp 10.42.0.5:81: connect: connection refused`),
/// which upstream's messages carry: the proxies' and the webhook caller's.
pub(crate) fn go_dial_error(host: &str, port: u16, err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    let errno: String = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("dial tcp {host}:{port}: connect: {errno}")
}

type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>;

async fn send<IO>(io: TokioIo<IO>, req: Request<ProxyBody>) -> Result<Response<Incoming>, hyper::Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(err) = conn.with_upgrades().await {
            tracing::debug!(%err, "proxied connection ended");
        }
    });
    sender.send_request(req).await
}

/// A TLS client that does not verify the backend, as upstream's proxy transport.
fn insecure_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .expect("ring supports TLS 1.2 and 1.3")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(crate::kubelet_proxy::AnyServer(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_as_upstream() {
        assert_eq!(split_scheme_name_port("web"), Some(("http", "web", "")));
        assert_eq!(split_scheme_name_port("web:80"), Some(("http", "web", "80")));
        assert_eq!(
            split_scheme_name_port("https:web:443"),
            Some(("https", "web", "443"))
        );
        assert_eq!(split_scheme_name_port("https:web:"), Some(("https", "web", "")));
        assert_eq!(split_scheme_name_port("ftp:web:21"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
    }

    #[test]
    fn only_proxy_paths_of_pods_and_services_are_targets() {
        let t = target("/api/v1/namespaces/default/services/https:web:443/proxy/a/b").unwrap();
        assert_eq!(
            (t.resource, t.id.as_str(), t.path.as_str()),
            ("services", "https:web:443", "/a/b")
        );
        let t = target("/api/v1/namespaces/default/pods/p%3A8080/proxy/").unwrap();
        assert_eq!(
            (t.resource, t.id.as_str(), t.path.as_str()),
            ("pods", "p:8080", "/")
        );
        assert_eq!(
            target("/api/v1/namespaces/default/pods/p/proxy").unwrap().path,
            ""
        );
        assert!(target("/api/v1/namespaces/default/pods/p/log").is_none());
        assert!(target("/api/v1/namespaces/default/configmaps/c/proxy/").is_none());
    }
}
