//! Admission webhooks end to end: real kubectl against a real `rkube server`, with an HTTPS
//! webhook (rcgen certificate, rustls, on 127.0.0.1) that labels config maps and denies those
//! labelled `deny`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;

use base64::Engine;
use common::Server;
use serde_json::{Value, json};

/// The webhook's answer: `/mutate` adds `mutated=yes`, `/validate` refuses `deny=true`.
fn answer(path: &str, review: &Value) -> Value {
    let request = &review["request"];
    let mut response = json!({"uid": request["uid"], "allowed": true});
    if path.starts_with("/validate") && request["object"]["metadata"]["labels"]["deny"] == "true" {
        response["allowed"] = json!(false);
        response["status"] = json!({"code": 403, "message": "labelled deny"});
    }
    if path.starts_with("/mutate") {
        let patch = if request["object"]["metadata"]["labels"].is_object() {
            json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}])
        } else {
            json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}])
        };
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// One HTTP/1.1 request per TLS connection, answered and closed.
fn serve(stream: &mut (impl Read + Write)) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut *stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    drop(reader);
    let out = stream;
    let review: Value = serde_json::from_slice(&body).unwrap_or_default();
    let reply = serde_json::to_vec(&answer(&path, &review)).unwrap();
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    )?;
    out.write_all(&reply)?;
    out.flush()
}

/// Starts the webhook; returns its port and CA bundle (base64 PEM).
fn webhook_server() -> (u16, String) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let ca = base64::engine::general_purpose::STANDARD.encode(key.cert.pem());
    let der = rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], der)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                if serve(&mut tls).is_ok() {
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            });
        }
    });
    (port, ca)
}

fn hook(name: &str, url: String, ca: &str, extra: Value) -> Value {
    let mut hook = json!({
        "name": name, "sideEffects": "None", "admissionReviewVersions": ["v1"],
        "clientConfig": {"url": url, "caBundle": ca},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
    });
    for (k, v) in extra.as_object().unwrap() {
        hook[k] = v.clone();
    }
    hook
}

#[test]
fn kubectl_creates_go_through_admission_webhooks() {
    let server = Server::start();
    let (port, ca) = webhook_server();
    let base = format!("https://127.0.0.1:{port}");
    let configs = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
         "metadata": {"name": "labeler"},
         "webhooks": [hook("label.example.com", format!("{base}/mutate"), &ca, json!({}))]},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": {"name": "guard"},
         "webhooks": [
            hook("deny.example.com", format!("{base}/validate"), &ca,
                 json!({"namespaceSelector": {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}})),
            hook("down.example.com", "https://127.0.0.1:1/".to_owned(), &ca,
                 json!({"objectSelector": {"matchLabels": {"down": "true"}}})),
            hook("ignored.example.com", "https://127.0.0.1:1/".to_owned(), &ca,
                 json!({"failurePolicy": "Ignore"})),
         ]},
    ]});
    let path = server.file("webhooks.json", &serde_json::to_vec(&configs).unwrap());
    server.ok(&["create", "-f", &path]);
    let table = server.ok(&["get", "mutatingwebhookconfigurations"]);
    assert!(
        table.starts_with("NAME      WEBHOOKS   AGE\nlabeler   1"),
        "{table}"
    );
    let table = server.ok(&["get", "validatingwebhookconfiguration", "guard"]);
    assert!(table.contains("guard   3"), "{table}");

    server.ok(&["create", "configmap", "plain", "-n", "default"]);
    let labels = server.ok(&[
        "get",
        "configmap",
        "plain",
        "-n",
        "default",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert_eq!(labels, r#"{"mutated":"yes"}"#);

    let denied = |name: &str, labels: &str| {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": {labels: "true"}}});
        server.file(&format!("{name}.json"), &serde_json::to_vec(&cm).unwrap())
    };
    let err = server.fails(&["create", "-f", &denied("bad", "deny")]);
    assert!(
        err.contains(r#"admission webhook "deny.example.com" denied the request: labelled deny"#),
        "{err}"
    );
    // A dry run reaches webhooks without side effects and is refused the same way.
    let err = server.fails(&["create", "-f", &denied("bad", "deny"), "--dry-run=server"]);
    assert!(err.contains("denied the request: labelled deny"), "{err}");
    // failurePolicy Fail with nothing listening: upstream's text.
    let err = server.fails(&["create", "-f", &denied("down", "down")]);
    assert!(
        err.contains(r#"Internal error occurred: failed calling webhook "down.example.com": failed to call webhook: Post "https://127.0.0.1:1/?timeout=10s": dial tcp 127.0.0.1:1: connect: connection refused"#),
        "{err}"
    );

    // The namespaceSelector leaves namespaces labelled `skip` out.
    server.ok(&["create", "namespace", "skipped"]);
    server.ok(&["label", "namespace", "skipped", "skip=yes"]);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "bad", "namespace": "skipped", "labels": {"deny": "true"}}});
    server.ok(&[
        "create",
        "-f",
        &server.file("skipped.json", &serde_json::to_vec(&cm).unwrap()),
    ]);
}
