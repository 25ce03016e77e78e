//! One webhook call: an AdmissionReview v1 POSTed over TLS (verified against `caBundle`, or
//! the system roots when none), its verdict and JSONPatch applied, and failurePolicy deciding
//! what an unreachable or broken webhook means.

use std::sync::Arc;
use std::time::Duration;

use apimachinery::status::ApiError;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use store::Store;

use super::Attributes;

pub async fn run(
    store: &dyn Store,
    hook: &Value,
    attrs: &Attributes<'_>,
    obj: &mut Value,
    mutating: bool,
) -> Result<(), ApiError> {
    let name = hook["name"].as_str().unwrap_or_default();
    let side_effects = hook["sideEffects"].as_str().unwrap_or("Unknown");
    let uid = uuid::Uuid::new_v4().to_string();
    let review = review(&uid, attrs, obj);
    match super::conditions::all_true(hook, &review["request"]) {
        Ok(true) => {}
        Ok(false) => return Ok(()),
        Err(_) if hook["failurePolicy"] == "Ignore" => return Ok(()),
        Err(err) => {
            return Err(ApiError::internal(format!(
                "failed calling webhook {name:?}: {err}"
            )));
        }
    }
    if attrs.dry_run && !matches!(side_effects, "None" | "NoneOnDryRun") {
        // Upstream refuses rather than skip: the webhook might act on a request never stored.
        return Err(ApiError::bad_request(format!(
            "admission webhook {name:?} does not support dry run"
        )));
    }
    let seconds = hook["timeoutSeconds"].as_u64().unwrap_or(10);
    let timeout = Duration::from_secs(seconds);
    let result = tokio::time::timeout(timeout, post(store, &hook["clientConfig"], seconds, &review))
        .await
        .unwrap_or_else(|_| Err("context deadline exceeded".to_owned()));
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            if hook["failurePolicy"] == "Ignore" {
                tracing::warn!(webhook = name, "failed calling webhook, ignoring: {err}");
                return Ok(());
            }
            return Err(ApiError::internal(format!(
                "failed calling webhook {name:?}: {err}"
            )));
        }
    };
    let response = &response["response"];
    for warning in response["warnings"].as_array().into_iter().flatten() {
        if let Some(text) = warning.as_str() {
            super::context::warn(text);
        }
    }
    if response["allowed"] != true {
        return Err(denied(name, &response["status"]));
    }
    if mutating
        && let Some(patch) = response["patch"].as_str()
        && let Err(err) = apply_patch(obj, patch)
        && hook["failurePolicy"] != "Ignore"
    {
        return Err(ApiError::internal(format!(
            "failed calling webhook {name:?}: {err}"
        )));
    }
    Ok(())
}

fn review(uid: &str, attrs: &Attributes<'_>, obj: &Value) -> Value {
    let def = attrs.def;
    let kind = json!({"group": def.group, "version": def.version, "kind": def.kind});
    let resource = json!({"group": def.group, "version": def.version, "resource": def.plural});
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": attrs.name,
        "operation": attrs.operation,
        "userInfo": super::context::user(),
        "object": if attrs.operation == "DELETE" { Value::Null } else { obj.clone() },
        "oldObject": attrs.old.cloned().unwrap_or(Value::Null),
        "dryRun": attrs.dry_run,
    });
    if let Some(sub) = attrs.subresource {
        request["subResource"] = sub.into();
    }
    if let Some(ns) = attrs.namespace {
        request["namespace"] = ns.into();
    }
    json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request})
}

/// Upstream's `ToStatusErr`: at least 400, the webhook's message after who denied it.
fn denied(name: &str, status: &Value) -> ApiError {
    let who = format!("admission webhook {name:?} denied the request");
    let message = status["message"].as_str().filter(|m| !m.is_empty());
    let reason = status["reason"].as_str().filter(|m| !m.is_empty());
    let message = match (message, reason) {
        (Some(m), _) | (None, Some(m)) => format!("{who}: {m}"),
        (None, None) => format!("{who} without explanation"),
    };
    let code = status["code"]
        .as_u64()
        .filter(|c| (400..600).contains(c))
        .unwrap_or(400) as u16;
    let mut err = ApiError::bad_request(message);
    err.code = code;
    err.reason = match reason {
        Some("Forbidden") => "Forbidden",
        Some("Invalid") => "Invalid",
        Some("NotFound") => "NotFound",
        Some("Conflict") => "Conflict",
        _ => "",
    };
    err
}

fn apply_patch(obj: &mut Value, patch: &str) -> Result<(), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .map_err(|e| format!("decoding patch: {e}"))?;
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    json_patch::patch(obj, &patch).map_err(|e| e.to_string())
}

/// Where a webhook is dialled: the URL its errors name, the address, and the TLS name.
struct Target {
    url: String,
    address: (String, u16),
    server_name: String,
    path: String,
}

async fn target(store: &dyn Store, client_config: &Value, timeout: u64) -> Result<Target, String> {
    if let Some(url) = client_config["url"].as_str() {
        let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']).to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let sep = if uri.query().is_some() { '&' } else { '?' };
        return Ok(Target {
            url: format!("{url}{sep}timeout={timeout}s"),
            address: (host.clone(), port),
            server_name: host,
            path: format!(
                "{}{sep}timeout={timeout}s",
                uri.path_and_query().map_or("/", |p| p.as_str())
            ),
        });
    }
    let service = &client_config["service"];
    let namespace = service["namespace"].as_str().unwrap_or_default();
    let name = service["name"].as_str().unwrap_or_default();
    let port = service["port"].as_i64().unwrap_or(443);
    let path = service["path"].as_str().unwrap_or("/");
    let path = format!("{path}?timeout={timeout}s");
    let server_name = format!("{name}.{namespace}.svc");
    let address = super::service::resolve(store, namespace, name, port).await?;
    Ok(Target {
        url: format!("https://{server_name}:{port}{path}"),
        address,
        server_name,
        path,
    })
}

async fn post(
    store: &dyn Store,
    client_config: &Value,
    timeout: u64,
    review: &Value,
) -> Result<Value, String> {
    let target = target(store, client_config, timeout).await?;
    let tls = tls_config(client_config["caBundle"].as_str())?;
    let url = &target.url;
    let fail = |e: &dyn std::fmt::Display| format!("failed to call webhook: Post {url:?}: {e}");
    let tcp = tokio::net::TcpStream::connect((target.address.0.as_str(), target.address.1))
        .await
        .map_err(|e| {
            fail(&crate::workload_proxy::go_dial_error(
                &target.address.0,
                target.address.1,
                &e,
            ))
        })?;
    let server_name =
        rustls::pki_types::ServerName::try_from(target.server_name.clone()).map_err(|e| fail(&e))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(server_name, tcp)
        .await
        .map_err(|e| fail(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| fail(&e))?;
    tokio::spawn(conn);
    let body = serde_json::to_vec(review).expect("JSON value");
    let request = http::Request::post(target.path.as_str())
        .header(http::header::HOST, target.server_name.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| fail(&e))?;
    let response = sender.send_request(request).await.map_err(|e| fail(&e))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(&e))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("received unexpected status code {}", status.as_u16()));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("failed to decode response: {e}"))
}

fn tls_config(ca_bundle: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(bundle) = ca_bundle {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(bundle)
            .map_err(|e| format!("invalid caBundle: {e}"))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("invalid caBundle: {e}"))?;
            roots.add(cert).map_err(|e| format!("invalid caBundle: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
