//! Admission webhooks called by the API server: an HTTPS webhook (rcgen certificate, on
//! 127.0.0.1) that labels config maps and denies those labelled `deny`, reached through
//! `clientConfig.url` with its `caBundle`; namespaceSelector, and failurePolicy Fail/Ignore
//! against a port nothing listens on.

mod common;

use std::sync::Arc;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use kube::Error;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use common::start;

/// The webhook's verdict on one AdmissionReview.
fn review(path: &str, review: &Value) -> Value {
    let request = &review["request"];
    let mut response = json!({"uid": request["uid"], "allowed": true});
    let labels = &request["object"]["metadata"]["labels"];
    if path == "/validate" && labels["deny"] == "true" {
        response["allowed"] = json!(false);
        response["status"] = json!({"code": 403, "message": "labelled deny"});
    }
    let old_labels = &request["oldObject"]["metadata"]["labels"];
    if path == "/protect" && request["operation"] == "DELETE" && old_labels["protected"] == "true" {
        assert!(request["object"].is_null(), "a delete has no new object");
        response["allowed"] = json!(false);
        response["status"] = json!({"message": "protected"});
    }
    if path == "/mutate" {
        assert!(request["userInfo"]["username"].is_string(), "{request}");
        response["warnings"] = json!(["labelled by the webhook"]);
        let patch = json!([{"op": "add", "path": "/metadata/labels/mutated", "value": request["operation"]}]);
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// Serves webhooks over TLS on 127.0.0.1; returns the port and the CA bundle (base64 PEM).
async fn webhook_server() -> (u16, String) {
    let key =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "svc-hook.default.svc".to_owned()])
            .unwrap();
    let ca = base64::engine::general_purpose::STANDARD.encode(key.cert.pem());
    let der = rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![key.cert.der().clone()], der)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let path = req.uri().path().to_owned();
                    let body = req.into_body().collect().await?.to_bytes();
                    let input: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let out = serde_json::to_vec(&review(&path, &input)).unwrap();
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(bytes::Bytes::from(out))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, ca)
}

fn hook(name: &str, url: &str, ca: &str, resource: &str, extra: Value) -> Value {
    let mut hook = json!({
        "name": name,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"url": url, "caBundle": ca},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": [resource]}],
    });
    for (k, v) in extra.as_object().unwrap() {
        hook[k] = v.clone();
    }
    hook
}

fn dynamic(api_version: &str, kind: &str, name: &str, rest: Value) -> DynamicObject {
    let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    for (k, v) in rest.as_object().unwrap() {
        obj[k] = v.clone();
    }
    serde_json::from_value(obj).unwrap()
}

fn api_error(err: Error) -> kube::core::Status {
    match err {
        Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn config_map(name: &str, labels: Value) -> DynamicObject {
    dynamic(
        "v1",
        "ConfigMap",
        name,
        json!({"metadata": {"name": name, "labels": labels}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_mutate_deny_and_follow_failure_policy() {
    let (client, _server, _dir) = start().await;
    let (port, ca) = webhook_server().await;
    let base = format!("https://127.0.0.1:{port}");
    let admission = |kind: &str, plural: &str| {
        let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
        Api::<DynamicObject>::all_with(client.clone(), &ApiResource::from_gvk_with_plural(&gvk, plural))
    };
    let pp = PostParams::default();
    let v1 = "admissionregistration.k8s.io/v1";
    admission("MutatingWebhookConfiguration", "mutatingwebhookconfigurations")
        .create(
            &pp,
            &dynamic(
                v1,
                "MutatingWebhookConfiguration",
                "labeler",
                json!({"webhooks": [
                    hook("label.example.com", &format!("{base}/mutate"), &ca, "configmaps",
                json!({"rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]})),
                ]}),
            ),
        )
        .await
        .unwrap();
    let skip = json!({
        "namespaceSelector": {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]},
        "matchConditions": [{"name": "not-unchecked", "expression": "object.metadata.name != 'unchecked'"}],
    });
    admission("ValidatingWebhookConfiguration", "validatingwebhookconfigurations")
        .create(&pp, &dynamic(v1, "ValidatingWebhookConfiguration", "guards", json!({"webhooks": [
            hook("deny.example.com", &format!("{base}/validate"), &ca, "configmaps", skip),
            hook("protect.example.com", &format!("{base}/protect"), &ca, "configmaps",
                json!({"rules": [{"operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]})),
            hook("down.example.com", "https://127.0.0.1:1/", &ca, "secrets", json!({})),
            hook("ignored.example.com", "https://127.0.0.1:1/", &ca, "serviceaccounts", json!({"failurePolicy": "Ignore"})),
        ]})))
        .await
        .unwrap();

    let config_maps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    let created = config_maps
        .create(&pp, &config_map("plain", json!({"app": "x"})))
        .await
        .unwrap();
    assert_eq!(
        created.metadata.labels.as_ref().unwrap()["mutated"],
        "CREATE",
        "the mutating webhook's patch"
    );
    // The webhook's warnings come back as Warning headers.
    let body = serde_json::to_vec(&config_map("warned", json!({"app": "x"}))).unwrap();
    let request = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(kube::client::Body::from(body))
        .unwrap();
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status(), 201);
    let warnings: Vec<_> = response.headers().get_all("warning").iter().collect();
    assert_eq!(warnings, ["299 - \"labelled by the webhook\""]);
    // Updates go through the mutating webhook too (UPDATE rule); the validating one is CREATE only.
    let mut changed = created.clone();
    let labels = changed.metadata.labels.as_mut().unwrap();
    labels.insert("deny".into(), "true".into());
    labels.insert("protected".into(), "true".into());
    let updated = config_maps.replace("plain", &pp, &changed).await.unwrap();
    assert_eq!(updated.metadata.labels.unwrap()["mutated"], "UPDATE");
    // DELETE: the webhook sees the old object; its denial without a code is a 400.
    let refused = api_error(
        config_maps
            .delete("plain", &Default::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(refused.code, 400);
    assert_eq!(
        refused.message,
        "admission webhook \"protect.example.com\" denied the request: protected"
    );
    config_maps.get("plain").await.unwrap();

    let denied = api_error(
        config_maps
            .create(&pp, &config_map("bad", json!({"deny": "true"})))
            .await
            .unwrap_err(),
    );
    assert_eq!(denied.code, 403);
    assert_eq!(
        denied.message,
        "admission webhook \"deny.example.com\" denied the request: labelled deny"
    );
    // Dry runs reach webhooks without side effects too.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let denied = api_error(
        config_maps
            .create(&dry, &config_map("bad", json!({"deny": "true"})))
            .await
            .unwrap_err(),
    );
    assert_eq!(denied.code, 403);
    // Its matchCondition leaves out config maps named `unchecked`.
    config_maps
        .create(&pp, &config_map("unchecked", json!({"deny": "true"})))
        .await
        .unwrap();

    // The validating webhook's namespaceSelector leaves out namespaces labelled `skip`.
    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
    );
    namespaces
        .create(
            &pp,
            &dynamic(
                "v1",
                "Namespace",
                "skipped",
                json!({"metadata": {"name": "skipped", "labels": {"skip": "yes"}}}),
            ),
        )
        .await
        .unwrap();
    let skipped: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "skipped",
        &ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    skipped
        .create(&pp, &config_map("bad", json!({"deny": "true"})))
        .await
        .unwrap();

    // failurePolicy Fail: the write is refused with upstream's text; Ignore lets it through.
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
    );
    let failed = api_error(
        secrets
            .create(&pp, &dynamic("v1", "Secret", "s", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((failed.code, failed.reason.as_str()), (500, "InternalError"));
    assert_eq!(
        failed.message,
        "Internal error occurred: failed calling webhook \"down.example.com\": failed to call webhook: \
         Post \"https://127.0.0.1:1/?timeout=10s\": dial tcp 127.0.0.1:1: connect: connection refused"
    );
    let accounts: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::erase::<k8s_openapi::api::core::v1::ServiceAccount>(&()),
    );
    accounts
        .create(&pp, &dynamic("v1", "ServiceAccount", "sa", json!({})))
        .await
        .unwrap();

    // A service-backed webhook: the Service's ready endpoint is dialled, TLS names
    // `svc-hook.default.svc`.
    let services: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&()),
    );
    services
        .create(
            &pp,
            &dynamic(
                "v1",
                "Service",
                "svc-hook",
                json!({"spec": {"ports": [{"port": 443, "targetPort": port}]}}),
            ),
        )
        .await
        .unwrap();
    let slices: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::erase::<k8s_openapi::api::discovery::v1::EndpointSlice>(&()),
    );
    slices
        .create(
            &pp,
            &dynamic(
                "discovery.k8s.io/v1",
                "EndpointSlice",
                "svc-hook-1",
                json!({
                    "metadata": {"name": "svc-hook-1", "labels": {"kubernetes.io/service-name": "svc-hook"}},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
                    "ports": [{"name": "", "port": port, "protocol": "TCP"}],
                }),
            ),
        )
        .await
        .unwrap();
    let mut svc_hook = hook("svc.example.com", "", &ca, "resourcequotas", json!({}));
    svc_hook["clientConfig"] =
        json!({"caBundle": ca, "service": {"namespace": "default", "name": "svc-hook", "path": "/validate"}});
    admission(
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
    )
    .create(
        &pp,
        &dynamic(
            v1,
            "ValidatingWebhookConfiguration",
            "by-service",
            json!({"webhooks": [svc_hook]}),
        ),
    )
    .await
    .unwrap();
    let quotas: Api<DynamicObject> = Api::namespaced_with(
        client,
        "default",
        &ApiResource::erase::<k8s_openapi::api::core::v1::ResourceQuota>(&()),
    );
    let quota = |name: &str, labels: Value| {
        dynamic(
            "v1",
            "ResourceQuota",
            name,
            json!({"metadata": {"name": name, "labels": labels}, "spec": {}}),
        )
    };
    quotas.create(&pp, &quota("fine", json!({}))).await.unwrap();
    let denied = api_error(
        quotas
            .create(&pp, &quota("bad", json!({"deny": "true"})))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        denied.message,
        "admission webhook \"svc.example.com\" denied the request: labelled deny"
    );
}
