//! The kubelet API: the HTTPS endpoint the API server proxies `kubectl logs`, `exec`,
//! `attach` and `port-forward` to (and reads `/stats/summary` from). TLS with a serving
//! certificate of the agent's own; callers must present a client certificate from the cluster
//! CA naming the API server's kubelet client (CN `kube-apiserver-kubelet-client`) or an admin
//! (group `system:masters`). Paths as upstream kubelet's:
//!
//! ```text
//! GET  /healthz
//! GET  /containerLogs/{namespace}/{pod}/{container}?follow&previous&tailLines&…
//! GET|POST /exec/{namespace}/{pod}/{container}?command=…&stdin&stdout&stderr&tty   (upgrade)
//! GET|POST /attach/{namespace}/{pod}/{container}?stdin&stdout&stderr&tty          (upgrade)
//! GET|POST /portForward/{namespace}/{pod}                                         (upgrade)
//! GET  /stats/summary
//! ```
//!
//! Modules: `containers` (names → runtime containers), `logs`, `exec` (exec and attach
//! runners), `netns` (connecting inside a pod), `stats`, `tls`.

mod containers;
mod exec;
mod logs;
mod netns;
mod stats;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use runtime::Runtime;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::streaming::remotecommand::{self, Options, Runner};
use crate::streaming::{portforward, ws};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The user the API server's kubelet client certificate names (as k3s and kubeadm issue it).
pub const APISERVER_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
const ADMIN_GROUP: &str = "system:masters";

/// What the handlers share.
pub struct State {
    pub runtime: Arc<dyn Runtime>,
    pub node_name: String,
}

/// Serves the kubelet API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: Arc<State>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(%err, "kubelet API: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(stream) => stream,
                Err(err) => {
                    tracing::debug!(%err, %peer, "kubelet API: TLS handshake failed");
                    return;
                }
            };
            let user = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| tls::subject(c));
            let user = Arc::new(user);
            let service = hyper::service::service_fn(move |req| {
                let (state, user) = (state.clone(), user.clone());
                async move { Ok::<_, Infallible>(handle(&state, user.as_ref().as_ref(), peer, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(err) = conn.await {
                tracing::debug!(%err, %peer, "kubelet API: connection ended");
            }
        });
    }
}

async fn handle(
    state: &Arc<State>,
    user: Option<&(String, Vec<String>)>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let response = match user {
        None => text(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Some((name, groups)) if name != APISERVER_CLIENT_USER && !groups.iter().any(|g| g == ADMIN_GROUP) => {
            text(
                StatusCode::FORBIDDEN,
                format!(
                    "Forbidden (user={name}, verb={}, resource=nodes, subresource=proxy)",
                    verb(&method)
                ),
            )
        }
        Some(_) => route(state, req).await,
    };
    tracing::debug!(%method, %path, %peer, status = response.status().as_u16(), "kubelet API request");
    response
}

fn verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    }
}

fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

async fn route(state: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let parts: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let stream = matches!(*req.method(), Method::GET | Method::POST);
    match parts.as_slice() {
        ["healthz"] if read => text(StatusCode::OK, "ok"),
        ["stats", "summary"] if read => {
            let runtime = state.runtime.clone();
            let node = state.node_name.clone();
            match tokio::task::spawn_blocking(move || stats::summary(runtime.as_ref(), &node)).await {
                Ok(summary) => json_response(StatusCode::OK, &summary),
                Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
            }
        }
        ["containerLogs", ns, pod, container] if read => {
            container_logs(state, &req, ns, pod, container).await
        }
        ["exec", ns, pod, container] | ["exec", ns, pod, _, container] if stream => {
            exec_or_attach(state, req, ns, pod, container, true).await
        }
        ["attach", ns, pod, container] | ["attach", ns, pod, _, container] if stream => {
            exec_or_attach(state, req, ns, pod, container, false).await
        }
        ["portForward", ns, pod] | ["portForward", ns, pod, _] if stream => {
            port_forward(state, req, ns, pod).await
        }
        ["healthz"]
        | ["stats", "summary"]
        | ["containerLogs", ..]
        | ["exec", ..]
        | ["attach", ..]
        | ["portForward", ..] => text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn container_logs(
    state: &Arc<State>,
    req: &Request<Incoming>,
    ns: &str,
    pod: &str,
    name: &str,
) -> Response<Body> {
    let params = match logs::parse_params(&query_pairs(req)) {
        Ok(params) => params,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let runtime = state.runtime.clone();
    let (ns2, pod2, name2, previous) = (ns.to_owned(), pod.to_owned(), name.to_owned(), params.previous);
    let found = tokio::task::spawn_blocking(move || {
        containers::container(runtime.as_ref(), &ns2, &pod2, &name2, previous)
    })
    .await;
    let container = match found {
        Ok(Ok((_, container))) => container,
        Ok(Err(err)) => return lookup_error(&err),
        Err(err) => return text(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    };
    let rx = logs::stream(state.runtime.clone(), container.id, container.log_path, params);
    let chunks = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))), rx))
    });
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(chunks)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn lookup_error(err: &containers::LookupError) -> Response<Body> {
    let code = StatusCode::from_u16(err.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(code, err.message().to_owned())
}

fn flag(query: &[(String, String)], name: &str) -> bool {
    query
        .iter()
        .filter(|(k, _)| k == name)
        .any(|(_, v)| matches!(v.as_str(), "" | "1" | "t" | "T" | "true" | "TRUE" | "True"))
}

/// How a streaming request wants to talk.
enum Upgrade {
    WebSocket { key: String },
    Spdy { offered: Vec<String> },
}

fn upgrade_kind(req: &Request<Incoming>) -> Option<Upgrade> {
    let headers = req.headers();
    if ws::is_upgrade(headers) {
        let key = headers.get(header::SEC_WEBSOCKET_KEY)?.to_str().ok()?.to_owned();
        return Some(Upgrade::WebSocket { key });
    }
    let spdy = headers.get_all(header::UPGRADE).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .to_ascii_lowercase()
            .starts_with("spdy/3.1")
    });
    spdy.then(|| Upgrade::Spdy {
        offered: headers
            .get_all("x-stream-protocol-version")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
    })
}

fn switching(headers: &[(&str, String)]) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().append(
                header::HeaderName::from_bytes(name.as_bytes()).expect("static header name"),
                value,
            );
        }
    }
    response
}

async fn exec_or_attach(
    state: &Arc<State>,
    mut req: Request<Incoming>,
    ns: &str,
    pod: &str,
    name: &str,
    is_exec: bool,
) -> Response<Body> {
    let query = query_pairs(&req);
    let tty = flag(&query, "tty");
    let options = Options {
        stdin: flag(&query, "stdin") || flag(&query, "input"),
        stdout: flag(&query, "stdout") || flag(&query, "output"),
        stderr: (flag(&query, "stderr") || flag(&query, "error")) && !tty,
        tty,
    };
    let command: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if !(options.stdin || options.stdout || options.stderr) {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 of stdin, stdout, stderr",
        );
    }
    if is_exec && command.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        );
    }
    let Some(upgrade) = upgrade_kind(&req) else {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required");
    };
    let runtime = state.runtime.clone();
    let (ns2, pod2, name2) = (ns.to_owned(), pod.to_owned(), name.to_owned());
    let found = tokio::task::spawn_blocking(move || {
        containers::container(runtime.as_ref(), &ns2, &pod2, &name2, false)
    })
    .await;
    let container = match found {
        Ok(Ok((_, container))) => container,
        Ok(Err(err)) => return lookup_error(&err),
        Err(err) => return text(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    };
    if container.state != runtime::ContainerState::Running {
        return text(StatusCode::BAD_REQUEST, format!("container not found ({name:?})"));
    }
    let runner: Runner = if is_exec {
        exec::exec_runner(state.runtime.clone(), container.id, command, options)
    } else {
        exec::attach_runner(state.runtime.clone(), container.id, container.log_path, options)
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    match upgrade {
        Upgrade::WebSocket { key } => {
            let offered = ws::offered_protocols(req.headers());
            let chosen = if offered.is_empty() {
                Some(("", remotecommand::Version::V1, false))
            } else {
                offered.iter().find_map(|o| {
                    remotecommand::WEBSOCKET_PROTOCOLS
                        .iter()
                        .find(|(name, _, _)| name == o)
                        .copied()
                })
            };
            let Some((protocol, version, base64)) = chosen else {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("none of the offered subprotocols {offered:?} is supported"),
                );
            };
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    remotecommand::serve_websocket(TokioIo::new(upgraded), version, base64, runner).await;
                }
            });
            websocket_accept(&key, protocol)
        }
        Upgrade::Spdy { offered } => {
            let chosen = remotecommand::SPDY_PROTOCOLS
                .iter()
                .find(|(name, _)| offered.iter().any(|o| o == name))
                .copied();
            let Some((protocol, version)) = chosen else {
                return text(
                    StatusCode::FORBIDDEN,
                    format!(
                        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {:?}",
                        remotecommand::SPDY_PROTOCOLS
                            .iter()
                            .map(|p| p.0)
                            .collect::<Vec<_>>()
                    ),
                );
            };
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    remotecommand::serve_spdy(TokioIo::new(upgraded), version, options, runner).await;
                }
            });
            spdy_accept(protocol)
        }
    }
}

fn websocket_accept(key: &str, protocol: &str) -> Response<Body> {
    let mut headers = vec![
        ("connection", "Upgrade".to_owned()),
        ("upgrade", "websocket".to_owned()),
        ("sec-websocket-accept", ws::accept_key(key)),
    ];
    if !protocol.is_empty() {
        headers.push(("sec-websocket-protocol", protocol.to_owned()));
    }
    switching(&headers)
}

fn spdy_accept(protocol: &str) -> Response<Body> {
    switching(&[
        ("connection", "Upgrade".to_owned()),
        ("upgrade", "SPDY/3.1".to_owned()),
        ("x-stream-protocol-version", protocol.to_owned()),
    ])
}

async fn port_forward(state: &Arc<State>, mut req: Request<Incoming>, ns: &str, pod: &str) -> Response<Body> {
    let Some(upgrade) = upgrade_kind(&req) else {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required");
    };
    let runtime = state.runtime.clone();
    let (ns2, pod2) = (ns.to_owned(), pod.to_owned());
    let sandbox =
        match tokio::task::spawn_blocking(move || containers::sandbox(runtime.as_ref(), &ns2, &pod2)).await {
            Ok(Ok(sandbox)) => sandbox,
            Ok(Err(err)) => return lookup_error(&err),
            Err(err) => return text(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        };
    let describe = format!("{}, uid {}", sandbox.pod_name, sandbox.pod_uid);
    let netns = sandbox.netns.clone();
    let connector: portforward::Connector =
        Arc::new(move |port| Box::pin(netns::connect(netns.clone(), port)));
    let on_upgrade = hyper::upgrade::on(&mut req);
    match upgrade {
        Upgrade::WebSocket { key } => {
            let offered = ws::offered_protocols(req.headers());
            if offered.iter().any(|p| p == portforward::TUNNEL_PROTOCOL) {
                tokio::spawn(async move {
                    if let Ok(upgraded) = on_upgrade.await {
                        let transport = crate::streaming::websocket_transport(TokioIo::new(upgraded));
                        portforward::serve(transport, connector, describe).await;
                    }
                });
                return websocket_accept(&key, portforward::TUNNEL_PROTOCOL);
            }
            // The channel form: the client's first supported protocol (none offered: binary).
            let chosen = if offered.is_empty() {
                Some(("", false))
            } else {
                offered.iter().find_map(|o| {
                    portforward::WEBSOCKET_PROTOCOLS
                        .iter()
                        .find(|(name, _)| name == o)
                        .copied()
                })
            };
            let Some((protocol, base64)) = chosen else {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("none of the offered subprotocols {offered:?} is supported"),
                );
            };
            let mut ports = Vec::new();
            for value in query_pairs(&req)
                .into_iter()
                .filter(|(k, _)| k == "ports")
                .map(|(_, v)| v)
            {
                for port in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match port.parse::<u16>() {
                        Ok(port) if port > 0 => ports.push(port),
                        _ => {
                            return text(
                                StatusCode::BAD_REQUEST,
                                format!("unable to parse {port:?} as a port: invalid port"),
                            );
                        }
                    }
                }
            }
            if ports.is_empty() {
                return text(StatusCode::BAD_REQUEST, "query parameter \"port\" is required");
            }
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    portforward::serve_websocket(TokioIo::new(upgraded), base64, ports, connector, describe)
                        .await;
                }
            });
            websocket_accept(&key, protocol)
        }
        Upgrade::Spdy { offered } => {
            if !offered.iter().any(|p| p == portforward::PROTOCOL) {
                return text(
                    StatusCode::FORBIDDEN,
                    format!(
                        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [\"{}\"]",
                        portforward::PROTOCOL
                    ),
                );
            }
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    let transport = crate::streaming::raw_transport(TokioIo::new(upgraded));
                    portforward::serve(transport, connector, describe).await;
                }
            });
            spdy_accept(portforward::PROTOCOL)
        }
    }
}

fn empty() -> Body {
    BodyExt::boxed_unsync(Full::new(Bytes::new()))
}

fn text(code: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(BodyExt::boxed_unsync(Full::new(Bytes::from(body.into()))));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response(code: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(BodyExt::boxed_unsync(Full::new(Bytes::from(value.to_string()))));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
