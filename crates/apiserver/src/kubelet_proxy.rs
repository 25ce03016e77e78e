//! The pod subresources kube-apiserver proxies to the node's kubelet API: `pods/log`,
//! `pods/exec`, `pods/attach`, `pods/portforward`, and `nodes/{name}/proxy/…`. The pod (404 as
//! upstream when missing), its container (upstream's `validateContainer` errors) and its node
//! (`pod X does not have a host assigned`) are checked here; the node's InternalIP and
//! `status.daemonEndpoints.kubeletEndpoint.Port` say where its agent listens. The request goes
//! there over TLS with the API server's kubelet client certificate; for upgrades (exec,
//! attach, port-forward over WebSocket or SPDY) the agent's 101 is passed back and both byte
//! streams are spliced — the protocols live in the agent. Non-upgrade answers are streamed
//! back (`kubectl logs -f`); a log request the agent refuses becomes a Status as upstream's
//! `GenericHttpResponseChecker` makes it.

use std::sync::Arc;
use std::time::Duration;

use apimachinery::status::ApiError;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};

use crate::request::{ResourceRequest, Verb};
use crate::server::{Body, State};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A path this module serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Pod {
        namespace: String,
        name: String,
        subresource: &'static str,
    },
    Node {
        name: String,
        path: String,
    },
}

/// Whether `path` names a proxied subresource.
pub fn target(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, sub] if !ns.is_empty() && !name.is_empty() => {
            let subresource = match *sub {
                "log" => "log",
                "exec" => "exec",
                "attach" => "attach",
                "portforward" => "portforward",
                _ => return None,
            };
            Some(Target::Pod {
                namespace: (*ns).to_owned(),
                name: (*name).to_owned(),
                subresource,
            })
        }
        ["api", "v1", "nodes", name, "proxy", rest @ ..] if !name.is_empty() => Some(Target::Node {
            name: (*name).to_owned(),
            path: format!("/{}", rest.join("/")),
        }),
        _ => None,
    }
}

/// The TLS client the API server reaches kubelets with: its kubelet client certificate; the
/// kubelet's serving certificate is not verified (kube-apiserver's default without
/// `--kubelet-certificate-authority`).
pub fn client_config(identity: &crate::pki::CertAndKey) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = rustls_pemfile::certs(&mut identity.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut identity.key_pem.as_bytes())?
        .ok_or_else(|| anyhow::anyhow!("no key in the kubelet client certificate"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Debug)]
pub(crate) struct AnyServer(pub(crate) Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(crate) async fn get_object(
    state: &State,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    let catalog = state.rest.crds.catalog();
    let def = catalog
        .find("", "v1", resource)
        .ok_or_else(ApiError::path_not_found)?;
    let request = ResourceRequest {
        group: String::new(),
        version: "v1".into(),
        resource: resource.into(),
        namespace: namespace.map(str::to_owned),
        name: Some(name.to_owned()),
        subresource: None,
        verb: Verb::Get,
    };
    state.rest.get(def, &request).await
}

/// Upstream's `validateContainer`: the named container must exist; none named is fine for a
/// pod of one container.
fn validate_container(pod: &Value, name: &str, wanted: Option<&str>) -> Result<String, ApiError> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (containers, init, ephemeral) = (
        names("containers"),
        names("initContainers"),
        names("ephemeralContainers"),
    );
    match wanted.filter(|w| !w.is_empty()) {
        Some(wanted) => {
            if containers
                .iter()
                .chain(&init)
                .chain(&ephemeral)
                .any(|c| c == wanted)
            {
                Ok(wanted.to_owned())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {wanted} is not valid for pod {name}"
                )))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None if containers.is_empty() => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                message.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
            }
            if !ephemeral.is_empty() {
                message.push_str(&format!(
                    " or one of the ephemeral containers: [{}]",
                    ephemeral.join(" ")
                ));
            }
            Err(ApiError::bad_request(message))
        }
    }
}

/// `host:port` of a node's kubelet API.
async fn kubelet_address(state: &State, node_name: &str) -> Result<(String, u16), ApiError> {
    let node = get_object(state, "nodes", None, node_name).await?;
    let addresses = node["status"]["addresses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let address = ["InternalIP", "ExternalIP", "Hostname"].iter().find_map(|kind| {
        addresses
            .iter()
            .find(|a| a["type"] == *kind)
            .and_then(|a| a["address"].as_str())
            .map(str::to_owned)
    });
    let Some(address) = address else {
        return Err(ApiError::internal(format!(
            "no preferred addresses found; known addresses: {addresses:?}"
        )));
    };
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .filter(|p| *p > 0 && *p <= u64::from(u16::MAX))
        .unwrap_or(10250) as u16;
    Ok((address, port))
}

fn query_without(query: Option<&str>, drop: &[&str]) -> String {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .filter(|(k, _)| !drop.contains(&k.as_str()))
        .collect();
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Serves a proxied subresource.
pub async fn serve(
    state: &State,
    target: Target,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (location, log_name) = match &target {
        Target::Pod {
            namespace,
            name,
            subresource,
        } => {
            let allowed = match *subresource {
                "log" => matches!(*req.method(), Method::GET | Method::HEAD),
                _ => matches!(*req.method(), Method::GET | Method::POST),
            };
            if !allowed {
                return Err(ApiError::method_not_allowed());
            }
            let pod = get_object(state, "pods", Some(namespace), name).await?;
            let query = req.uri().query();
            let container = form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .find(|(k, _)| k == "container")
                .map(|(_, v)| v.into_owned());
            let node = pod["spec"]["nodeName"].as_str().unwrap_or_default().to_owned();
            let path = match *subresource {
                "portforward" => {
                    if node.is_empty() {
                        return Err(ApiError::bad_request(format!(
                            "pod {name} does not have a host assigned"
                        )));
                    }
                    format!(
                        "/portForward/{}/{}",
                        encode_segment(namespace),
                        encode_segment(name)
                    )
                }
                sub => {
                    let container = validate_container(&pod, name, container.as_deref())?;
                    if node.is_empty() {
                        if sub == "log" {
                            // Upstream: no location, an empty log.
                            return Ok(Response::new(BodyExt::boxed_unsync(http_body_util::Full::new(
                                Bytes::new(),
                            ))));
                        }
                        return Err(ApiError::bad_request(format!(
                            "pod {name} does not have a host assigned"
                        )));
                    }
                    let endpoint = match sub {
                        "log" => "containerLogs",
                        other => other,
                    };
                    format!(
                        "/{endpoint}/{}/{}/{}",
                        encode_segment(namespace),
                        encode_segment(name),
                        encode_segment(&container)
                    )
                }
            };
            let query = query_without(query, &["container", "insecureSkipTLSVerifyBackend", "pretty"]);
            let (host, port) = kubelet_address(state, &node).await?;
            let log_name = (*subresource == "log").then(|| name.clone());
            ((host, port, path, query), log_name)
        }
        Target::Node { name, path } => {
            let (host, port) = kubelet_address(state, name).await?;
            let query = req.uri().query().unwrap_or("").to_owned();
            ((host, port, path.clone(), query), None)
        }
    };
    proxy(state, location, log_name, req).await
}

async fn proxy(
    state: &State,
    (host, port, path, query): (String, u16, String, String),
    log_name: Option<String>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let unreachable = |err: String| ApiError::internal(format!("error dialing backend: {err}"));
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| unreachable(format!("dial tcp {host}:{port}: i/o timeout")))?
    .map_err(|e| unreachable(format!("dial tcp {host}:{port}: {e}")))?;
    let server_name = ServerName::try_from(host.clone()).map_err(|e| unreachable(e.to_string()))?;
    let tls = tokio_rustls::TlsConnector::from(state.kubelet_tls.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| unreachable(format!("tls: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(err) = conn.with_upgrades().await {
            tracing::debug!(%err, "kubelet connection ended");
        }
    });
    let uri = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let mut builder = Request::builder().method(req.method().clone()).uri(uri);
    for (name, value) in req.headers() {
        if name == header::HOST || name == header::AUTHORIZATION || name == header::CONTENT_LENGTH {
            continue;
        }
        if !upgrade && (name == header::CONNECTION || name == header::TRANSFER_ENCODING) {
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
    let backend_req = builder
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut backend = sender
        .send_request(backend_req)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if backend.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(splice_upgrade(&mut backend, &mut req));
    }
    let status = backend.status();
    if let Some(name) = log_name
        && !(status.is_success() && status.as_u16() <= 206)
    {
        let body = backend
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned();
        return Err(match status.as_u16() {
            400 => ApiError::bad_request(text),
            500 => ApiError::internal(text),
            code => return Ok(generic_server_response(code, &name, &text)),
        });
    }
    let (parts, body) = backend.into_parts();
    let body = body.map_err(|_| ()).map_frame(|f| f).boxed_unsync();
    let mut response = Response::new(bridge(body));
    *response.status_mut() = parts.status;
    for name in [header::CONTENT_TYPE, header::CONTENT_ENCODING] {
        if let Some(value) = parts.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    if response.headers().get(header::CONTENT_TYPE).is_none() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    Ok(response)
}

/// The answer to a client whose upgrade the backend accepted (101): both connections, once
/// upgraded, are spliced together in the background.
pub(crate) fn splice_upgrade(
    backend: &mut Response<Incoming>,
    client: &mut Request<Incoming>,
) -> Response<Body> {
    let backend_upgrade = hyper::upgrade::on(&mut *backend);
    let client_upgrade = hyper::upgrade::on(client);
    tokio::spawn(async move {
        let (Ok(backend), Ok(client)) = (backend_upgrade.await, client_upgrade.await) else {
            return;
        };
        let (mut backend, mut client) = (TokioIo::new(backend), TokioIo::new(client));
        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    });
    let mut response = Response::new(BodyExt::boxed_unsync(Empty::<Bytes>::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = backend.headers().clone();
    response
}

/// The backend's body as ours: a read error ends the stream (the client sees it cut short).
pub(crate) fn bridge(body: http_body_util::combinators::UnsyncBoxBody<Bytes, ()>) -> Body {
    use futures::StreamExt as _;
    let stream = http_body_util::BodyStream::new(body)
        .take_while(|frame| std::future::ready(frame.is_ok()))
        .filter_map(|frame| std::future::ready(frame.ok().map(Ok::<_, std::convert::Infallible>)));
    BodyExt::boxed_unsync(http_body_util::StreamBody::new(stream))
}

/// Upstream's `NewGenericServerResponse` for a kubelet answer other than 400 and 500.
fn generic_server_response(code: u16, name: &str, body: &str) -> Response<Body> {
    let (reason, message) = match code {
        404 => (
            "NotFound",
            "the server could not find the requested resource".to_owned(),
        ),
        401 => (
            "Unauthorized",
            "the server has asked for the client to provide credentials".to_owned(),
        ),
        403 => ("Forbidden", body.to_owned()),
        _ => (
            "",
            format!("the server responded with the status code {code} but did not return more information"),
        ),
    };
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": name, "kind": "pods/log", "causes": [{"reason": "UnexpectedServerResponse", "message": body}]},
        "code": code,
    });
    if reason.is_empty() {
        status.as_object_mut().map(|s| s.remove("reason"));
    }
    let mut response = Response::new(BodyExt::boxed_unsync(http_body_util::Full::new(Bytes::from(
        status.to_string(),
    ))));
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_paths() {
        assert_eq!(
            target("/api/v1/namespaces/ns/pods/web/exec"),
            Some(Target::Pod {
                namespace: "ns".into(),
                name: "web".into(),
                subresource: "exec"
            })
        );
        assert_eq!(target("/api/v1/namespaces/ns/pods/web/status"), None);
        assert_eq!(
            target("/api/v1/nodes/n1/proxy/stats/summary"),
            Some(Target::Node {
                name: "n1".into(),
                path: "/stats/summary".into()
            })
        );
    }

    #[test]
    fn container_validation_as_upstream() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(validate_container(&pod, "p", Some("b")).unwrap(), "b");
        assert_eq!(
            validate_container(&pod, "p", Some("x")).unwrap_err().to_status()["message"],
            "container x is not valid for pod p"
        );
        assert_eq!(
            validate_container(&pod, "p", None).unwrap_err().to_status()["message"],
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        let single = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(validate_container(&single, "p", None).unwrap(), "only");
    }
}
