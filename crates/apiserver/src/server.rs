//! HTTPS serving: the TLS accept loop (HTTP/1.1 and HTTP/2 by ALPN), authentication, and
//! dispatch of each request to discovery or the REST handlers, with every failure answered as
//! a Kubernetes `Status`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use apimachinery::status::ApiError;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::field_validation::{self, Mode as FieldValidation};
use crate::pki::{UserInfo, identity_from_cert};
use crate::query::Query;
use crate::request::{self, Target, Verb};
use crate::rest::Rest;
use crate::{authn, crd, discovery, subresources, table, watch};

/// Request bodies larger than this get 413, as upstream's limit for JSON bodies (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What every request handler shares.
pub struct State {
    pub rest: Rest,
    pub tokens: crate::authn::Tokens,
    pub node_join: crate::authn::NodeJoin,
    pub openapi: crate::openapi::OpenApi,
    /// Signs and verifies service-account tokens.
    pub sa_signer: crate::sa_token::Signer,
    /// TLS towards kubelets (the API server's kubelet client certificate).
    pub kubelet_tls: Arc<rustls::ClientConfig>,
}

/// Serves TLS connections from `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: Arc<State>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                continue;
            }
        };
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(err) => {
                    tracing::debug!(%err, %peer, "TLS handshake failed");
                    return;
                }
            };
            // The client certificate (already verified against the CA) names the user.
            let user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| identity_from_cert(c));
            let user = Arc::new(user);
            let service = hyper::service::service_fn(move |req| {
                let (state, user) = (state.clone(), user.clone());
                async move { Ok::<_, Infallible>(handle(&state, user.as_ref().as_ref(), peer, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // With upgrades: exec, attach and port-forward switch protocols (HTTP/1.1).
            if let Err(err) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%err, %peer, "connection ended");
            }
        });
    }
}

async fn handle(
    state: &State,
    user: Option<&UserInfo>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    // Admission webhooks read the user and leave warnings in the request's context.
    let (result, webhook_warnings) = crate::admission::webhook::in_request(route(state, user, req)).await;
    let mut response = match result {
        Ok(response) => response,
        Err(err) => status_response(&err),
    };
    for warning in &webhook_warnings {
        add_warning(&mut response, warning);
    }
    tracing::debug!(%method, %path, %peer, status = response.status().as_u16(), elapsed = ?started.elapsed(), "request");
    response
}

async fn route(
    state: &State,
    user: Option<&UserInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    // Health and version are public, as upstream's system:public-info-viewer role makes them.
    match path.as_str() {
        "/livez" | "/readyz" | "/healthz" => return Ok(text(StatusCode::OK, "ok")),
        "/version" => return Ok(json(StatusCode::OK, &discovery::version())),
        // Joining nodes: the CA they check against their token, then their certificate.
        authn::CA_CERTS_PATH => return Ok(text(StatusCode::OK, state.node_join.ca_cert_pem().to_owned())),
        authn::NODE_CERT_PATH => {
            let pem = state.node_join.node_certificate(
                header_str(&req, header::AUTHORIZATION),
                header_str(&req, header::HeaderName::from_static(authn::NODE_NAME_HEADER)),
            )?;
            return Ok(text(StatusCode::OK, pem));
        }
        _ => {}
    }
    // A verified client certificate, else a known bearer token (upstream's union authenticator).
    let authorization = header_str(&req, header::AUTHORIZATION);
    let account;
    let user = match user.or_else(|| state.tokens.authenticate(authorization)) {
        Some(user) => user,
        None => {
            let bearer = authorization
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(str::trim);
            let verified = match bearer {
                Some(token) => {
                    crate::service_accounts::authenticate(&state.rest, &state.sa_signer, token, &[]).await
                }
                None => None,
            };
            match verified {
                Some(Ok((user, _))) => {
                    account = user;
                    &account
                }
                Some(Err(reason)) => {
                    tracing::debug!(%reason, "service account token refused");
                    return Err(ApiError::unauthorized());
                }
                None => return Err(ApiError::unauthorized()),
            }
        }
    };
    crate::admission::webhook::set_user(user);
    match path.as_str() {
        "/.well-known/openid-configuration" => {
            return Ok(json(StatusCode::OK, &state.sa_signer.openid_configuration()));
        }
        "/openid/v1/jwks" => {
            let mut response = json(StatusCode::OK, &state.sa_signer.jwks());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            );
            return Ok(response);
        }
        _ => {}
    }
    let query =
        Query::parse(req.uri().query()).with_user_agent(header_str(&req, header::USER_AGENT).unwrap_or(""));
    if let Some(document) = path.strip_prefix("/openapi/") {
        let accept = header_str(&req, header::ACCEPT).unwrap_or("");
        let catalog = state.rest.crds.catalog();
        state
            .openapi
            .use_custom(catalog.revision(), || crd::openapi::schemas(&catalog));
        return openapi(&state.openapi, document, &query, accept);
    }
    if let Some(target) = crate::kubelet_proxy::target(&path) {
        return crate::kubelet_proxy::serve(state, target, req).await;
    }
    if let Some(target) = crate::workload_proxy::target(&path) {
        return crate::workload_proxy::serve(state, target, req).await;
    }
    let target = request::parse(req.method(), &path, query.flag("watch"))?;
    if !matches!(target, Target::Resource(_)) && req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::method_not_allowed());
    }
    let catalog = state.rest.crds.catalog();
    let defs = catalog.defs();
    match target {
        Target::CoreVersions | Target::Groups => {
            let core = target == Target::CoreVersions;
            let accept = header_str(&req, header::ACCEPT).unwrap_or("");
            // Aggregated discovery when asked for (kubectl 1.30+ does), the legacy lists otherwise.
            let mut response = match discovery::aggregated_version(accept) {
                Some(version) => {
                    let mut response = json(StatusCode::OK, &discovery::aggregated(defs, core, version));
                    let content_type = discovery::aggregated_content_type(version);
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_str(&content_type).expect("ASCII"),
                    );
                    response
                }
                None if core => json(StatusCode::OK, &discovery::core_versions()),
                None => json(StatusCode::OK, &discovery::groups(defs)),
            };
            response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept"));
            Ok(response)
        }
        Target::Group(group) => discovery::group(defs, &group)
            .map(|g| json(StatusCode::OK, &g))
            .ok_or_else(ApiError::path_not_found),
        Target::Resources { group, version } => discovery::resource_list(defs, &group, &version)
            .map(|l| json(StatusCode::OK, &l))
            .ok_or_else(ApiError::path_not_found),
        Target::Other(_) => Err(ApiError::path_not_found()),
        Target::Resource(r) => {
            let def = catalog
                .find(&r.group, &r.version, &r.resource)
                .ok_or_else(ApiError::path_not_found)?;
            let custom = catalog.custom(def);
            if def.storage.is_empty() {
                // Reviews are answered, not stored.
                if r.verb != Verb::Create || r.subresource.is_some() {
                    return Err(ApiError::method_not_allowed());
                }
                let content_type = header_str(&req, header::CONTENT_TYPE)
                    .unwrap_or("application/json")
                    .to_owned();
                let body = decode(&content_type, &read_body(req.into_body()).await?)?;
                // Service-account tokens need the store; the review itself is synchronous.
                let account = match (def.plural, body["spec"]["token"].as_str()) {
                    ("tokenreviews", Some(token)) => {
                        let audiences: Vec<String> = body["spec"]["audiences"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|a| a.as_str().map(str::to_owned))
                            .collect();
                        crate::service_accounts::authenticate(
                            &state.rest,
                            &state.sa_signer,
                            token,
                            &audiences,
                        )
                        .await
                    }
                    _ => None,
                };
                let answer = crate::reviews::review(def, user, &state.tokens, body, account)?;
                return Ok(json(StatusCode::CREATED, &answer));
            }
            let scale = r.subresource.as_deref() == Some("scale") && custom.is_some();
            if custom.is_some()
                && let Some(sub) = r.subresource.as_deref()
                && !def.has_subresource(sub)
            {
                // A custom resource serves only the subresources its CRD enables.
                return Err(ApiError::path_not_found());
            }
            if def.plural == "serviceaccounts"
                && def.group.is_empty()
                && r.subresource.as_deref() == Some("token")
            {
                if r.verb != Verb::Create {
                    return Err(ApiError::method_not_allowed());
                }
                let content_type = header_str(&req, header::CONTENT_TYPE)
                    .unwrap_or("application/json")
                    .to_owned();
                let body = decode(&content_type, &read_body(req.into_body()).await?)?;
                let answer =
                    crate::service_accounts::token_request(&state.rest, &state.sa_signer, &r, body).await?;
                return Ok(json(StatusCode::CREATED, &answer));
            }
            let ephemeral = def.group.is_empty()
                && def.plural == "pods"
                && r.subresource.as_deref() == Some("ephemeralcontainers");
            if ephemeral && !matches!(r.verb, Verb::Get | Verb::Update | Verb::Patch) {
                return Err(ApiError::method_not_allowed());
            }
            if let Some(sub) = &r.subresource
                && !matches!(sub.as_str(), "status")
                && !(sub == "approval" && crate::certificates::is_csr(def))
                && !ephemeral
                && !(sub == "finalize" && def.plural == "namespaces" && r.verb == Verb::Update)
                && !scale
                && !subresources::serves(def, Some(sub))
            {
                return Err(if def.has_subresource(sub) {
                    ApiError::method_not_allowed()
                } else {
                    ApiError::path_not_found()
                });
            }
            if !def.has_verb(r.verb.as_str()) {
                return Err(ApiError::method_not_allowed());
            }
            if def.namespaced
                && r.namespace.is_none()
                && matches!(
                    r.verb,
                    Verb::Create | Verb::Get | Verb::Update | Verb::Patch | Verb::Delete
                )
            {
                return Err(ApiError::path_not_found());
            }
            let accept = header_str(&req, header::ACCEPT).unwrap_or("").to_owned();
            let content_type = header_str(&req, header::CONTENT_TYPE)
                .unwrap_or("application/json")
                .to_owned();
            let mut body = read_body(req.into_body()).await?;
            if matches!(r.verb, Verb::Delete | Verb::DeleteCollection) {
                body = delete_options_as_json(&content_type, body)?;
            }
            let rest = &state.rest;
            if let Some(custom) = custom.as_deref()
                && scale
            {
                if !matches!(r.verb, Verb::Get | Verb::Update | Verb::Patch) {
                    return Err(ApiError::method_not_allowed());
                }
                let scale = crd::scale::handle(rest, def, custom, &r, &query, &content_type, &body).await?;
                return Ok(json(StatusCode::OK, &scale));
            }
            if subresources::serves(def, r.subresource.as_deref()) {
                let parsed = match r.verb {
                    Verb::Create | Verb::Update => Some(decode(&content_type, &body)?),
                    _ => None,
                };
                let (code, obj) =
                    subresources::serve(rest, def, &r, &query, &content_type, parsed, &body).await?;
                return Ok(json(code, &obj));
            }
            // Tables are for reads: gets, lists and watches.
            let as_table =
                table::wants_table(&accept) && matches!(r.verb, Verb::Get | Verb::List | Verb::Watch);
            if as_table {
                table::validate_options(&query)?;
            }
            // Writes answer with metadata only too (kube-rs's patch_metadata), as upstream
            // transforms every response object.
            let as_metadata = (!as_table
                && matches!(
                    r.verb,
                    Verb::Get | Verb::List | Verb::Watch | Verb::Create | Verb::Update | Verb::Patch
                ))
            .then(|| crate::partial::wanted(&accept))
            .flatten();
            let mut warnings: Vec<String> = custom
                .iter()
                .filter_map(|c| c.deprecation_warning.clone())
                .chain(deprecation_warning(def))
                .collect();
            let computed = crate::component_statuses::is_component_statuses(def);
            if r.verb == Verb::List
                && !as_table
                && as_metadata.is_none()
                && !computed
                && let Some(list) = rest.list_raw(def, &r, &query).await?
            {
                let chunks =
                    futures::stream::iter(list.into_chunks().map(|c| Ok::<_, Infallible>(Frame::data(c))));
                let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(chunks)));
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                for warning in &warnings {
                    add_warning(&mut response, warning);
                }
                return Ok(response);
            }
            if matches!(r.verb, Verb::Delete | Verb::DeleteCollection) {
                warnings.extend(crate::deletion::warning(def, &query, &body));
            }
            let (code, obj) = match r.verb {
                Verb::Get if computed => (
                    StatusCode::OK,
                    crate::component_statuses::get(rest, r.name.as_deref().unwrap_or_default()).await?,
                ),
                Verb::List if computed => (
                    StatusCode::OK,
                    crate::component_statuses::list(rest, def, &query).await?,
                ),
                Verb::Get => (StatusCode::OK, rest.get(def, &r).await?),
                Verb::List => (StatusCode::OK, rest.list(def, &r, &query).await?),
                Verb::Watch => {
                    let mut events = watch::watch(rest, def, &r, &query).await?;
                    if as_table {
                        events = match &custom {
                            Some(c) => {
                                let printer = Arc::new(crd::printer::Printer {
                                    columns: c.columns.clone(),
                                });
                                table::watch_events_dynamic(def, printer, &query, events)
                            }
                            None => table::watch_events(def, &query, events),
                        };
                    }
                    if let Some(version) = as_metadata {
                        events = crate::partial::watch_events(events, version);
                    }
                    let mut response = watch_response(events);
                    for warning in &warnings {
                        add_warning(&mut response, warning);
                    }
                    return Ok(response);
                }
                Verb::Create => {
                    let mut obj = decode(&content_type, &body)?;
                    warnings.extend(check_fields(def, custom.as_deref(), &query, &mut obj)?);
                    if crate::certificates::is_csr(def) {
                        crate::certificates::record_requester(&mut obj, user);
                    }
                    (StatusCode::CREATED, rest.create(def, &r, &query, obj).await?)
                }
                Verb::Update => {
                    let mut obj = decode(&content_type, &body)?;
                    warnings.extend(check_fields(def, custom.as_deref(), &query, &mut obj)?);
                    (StatusCode::OK, rest.update(def, &r, &query, obj).await?)
                }
                Verb::Patch if content_type.starts_with("application/apply-patch+yaml") => {
                    match rest.apply(def, &r, &query, &body).await? {
                        (true, created) => (StatusCode::CREATED, created),
                        (false, updated) => (StatusCode::OK, updated),
                    }
                }
                Verb::Patch => {
                    let (patched, found) = rest.patch(def, &r, &query, &content_type, &body).await?;
                    warnings.extend(found);
                    (StatusCode::OK, patched)
                }
                Verb::Delete if custom.is_some() => {
                    crd::resource::delete_response(def, rest.delete(def, &r, &query, &body).await?)
                }
                Verb::Delete => {
                    let deleted = rest.delete(def, &r, &query, &body).await?;
                    (crate::deletion::response_code(&deleted, &query, &body), deleted)
                }
                Verb::DeleteCollection => (
                    StatusCode::OK,
                    rest.delete_collection(def, &r, &query, &body).await?,
                ),
            };
            if crd::is_definition(def) && r.verb != Verb::Get && r.verb != Verb::List {
                // Serve (or stop serving) at once rather than when the CRD watch catches up.
                if let Err(err) = rest.crds.refresh(rest).await {
                    tracing::warn!(%err, "cannot refresh the CRD registry");
                }
            }
            let mut response = if as_table {
                let table = match &custom {
                    Some(c) => {
                        let printer = crd::printer::Printer {
                            columns: c.columns.clone(),
                        };
                        table::to_table_dynamic(def, &printer, &obj, &query)
                    }
                    None => table::to_table(def, &obj, &query),
                };
                json(code, &table)
            } else if let Some(version) = as_metadata {
                json(code, &crate::partial::convert(&obj, version))
            } else {
                json(code, &obj)
            };
            for warning in warnings {
                add_warning(&mut response, &warning);
            }
            Ok(response)
        }
    }
}

/// `/openapi/v2` (JSON, or protobuf for client-go), `/openapi/v3` and
/// `/openapi/v3/<group-version path>` (JSON).
fn openapi(
    api: &crate::openapi::OpenApi,
    document: &str,
    query: &Query,
    accept: &str,
) -> Result<Response<Body>, ApiError> {
    let media: Vec<&str> = accept
        .split(',')
        .map(|a| a.split(';').next().unwrap_or("").trim())
        .collect();
    let accepts_json = accept.is_empty()
        || media
            .iter()
            .any(|a| matches!(*a, "application/json" | "application/*" | "*/*"));
    // client-go asks for v2 in protobuf only (gnostic's openapi_v2.Document).
    let v2_protobuf =
        document == "v2" && !accepts_json && media.iter().any(|a| a.contains("proto-openapi.spec.v2"));
    if !accepts_json && !v2_protobuf {
        return Err(ApiError::not_acceptable(
            "only the following media types are accepted: application/json, application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        ));
    }
    let (body, cache_control) = match document {
        "v2" if v2_protobuf => {
            let mut response = Response::new(full(api.documents().v2_protobuf.clone()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
            );
            return Ok(response);
        }
        "v2" => (api.documents().v2.clone(), "no-cache, private"),
        "v3" => (
            Bytes::from(serde_json::to_vec(&api.v3_root()).expect("JSON")),
            "no-cache, private",
        ),
        _ => {
            let gv = document
                .strip_prefix("v3/")
                .ok_or_else(ApiError::path_not_found)?;
            let docs = api.documents();
            let doc = docs.v3.get(gv).ok_or_else(ApiError::path_not_found)?;
            match query.get("hash") {
                // An outdated hash: point at the current document, as upstream does.
                Some(hash) if hash != doc.hash => {
                    let mut response = Response::new(full(Bytes::new()));
                    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
                    let location = format!("/openapi/v3/{gv}?hash={}", doc.hash);
                    response
                        .headers_mut()
                        .insert(header::LOCATION, HeaderValue::from_str(&location).expect("ASCII"));
                    return Ok(response);
                }
                Some(_) => (doc.json.clone(), "public, immutable"),
                None => (doc.json.clone(), "no-cache, private"),
            }
        }
    };
    let mut response = Response::new(full(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    Ok(response)
}

/// Upstream's warning on every request to a deprecated built-in API: 1.33 deprecates core/v1
/// Endpoints in favour of EndpointSlices; ComponentStatus since 1.19.
fn deprecation_warning(def: &apimachinery::resources::ResourceDef) -> Option<String> {
    if crate::component_statuses::is_component_statuses(def) {
        return Some(crate::component_statuses::DEPRECATION.to_owned());
    }
    (def.group.is_empty() && def.plural == "endpoints")
        .then(|| "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice".to_owned())
}

/// A `Warning` header as upstream sends them: code 299, no agent, the text quoted.
fn add_warning(response: &mut Response<Body>, text: &str) {
    let quoted = format!("299 - {}", serde_json::Value::from(text));
    if let Ok(value) = HeaderValue::from_str(&quoted) {
        response.headers_mut().append(header::WARNING, value);
    }
}

/// Unknown fields under `fieldValidation`: by the kind's fields for built-ins, by the schema for
/// custom resources.
fn check_fields(
    def: &apimachinery::resources::ResourceDef,
    custom: Option<&crd::CustomVersion>,
    query: &Query,
    obj: &mut Value,
) -> Result<Vec<String>, ApiError> {
    let mode = FieldValidation::from_query(query)?;
    match custom {
        Some(custom) => crd::resource::check_unknown_fields(def, custom, mode, obj),
        None => field_validation::check(def, mode, obj),
    }
}

/// A request header as text (None when absent or not visible ASCII).
fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(
            ApiError::too_large(format!("Request entity too large: limit is {MAX_BODY_BYTES}")),
        ),
        Err(err) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {err}"
        ))),
    }
}

/// A request body as JSON (YAML bodies come with server-side apply in a later change).
pub(crate) fn decode(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    use apimachinery::protobuf::{ProtobufError, decode_object};
    match content_type.split(';').next().unwrap_or("").trim() {
        "application/json" | "" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding the request body as JSON: {e}"))),
        // client-go ≥ 0.32 sends built-in kinds as protobuf.
        "application/vnd.kubernetes.protobuf" => {
            let obj = decode_object(body).map_err(|e| match e {
                ProtobufError::Unsupported { .. } => ApiError::unsupported_media_type_because(&e.to_string()),
                other => ApiError::bad_request(other.to_string()),
            })?;
            // Embedded JSON (RawExtension) under nested messages can go deeper than a JSON body.
            if crate::objects::depth(&obj) > crate::objects::MAX_DEPTH {
                return Err(ApiError::bad_request(format!(
                    "malformed protobuf: the object nests deeper than {} levels",
                    crate::objects::MAX_DEPTH
                )));
            }
            Ok(obj)
        }
        media => Err(ApiError::unsupported_media_type(media)),
    }
}

/// A DELETE body as the JSON the deletion code reads: client-go's typed clients (Helm's release
/// storage among them) send their `DeleteOptions` as protobuf.
fn delete_options_as_json(content_type: &str, body: Bytes) -> Result<Bytes, ApiError> {
    if body.is_empty() || !content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return Ok(body);
    }
    let options = decode(content_type, &body)?;
    Ok(serde_json::to_vec(&options).expect("JSON value").into())
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn json(code: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(full(crate::wire::to_vec(value)));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn text(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub fn status_response(err: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(full(err.to_status_bytes()));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn watch_response(events: watch::EventStream) -> Response<Body> {
    let frames = events.map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
