//! certificates.k8s.io/v1 CertificateSigningRequests driven by kube-rs, in process: create
//! (the requester recorded, the status reset), `/approval` writes that change only the
//! conditions, `/status` writes that cannot touch them, the spec immutable, and upstream's
//! validation errors.

mod common;

use base64::Engine;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Error};
use serde_json::json;

struct Cluster {
    client: Client,
    _server: apiserver::Running,
    _dir: tempfile::TempDir,
}

async fn start() -> Cluster {
    let (client, server, dir) = common::start().await;
    Cluster {
        client,
        _server: server,
        _dir: dir,
    }
}

/// A PEM certificate request, base64 as `spec.request` carries it.
fn request_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["kube-rs".to_owned()]).unwrap();
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    base64::engine::general_purpose::STANDARD.encode(pem)
}

fn csr(name: &str, request: &str) -> CertificateSigningRequest {
    serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": request, "signerName": "kubernetes.io/kube-apiserver-client",
            "expirationSeconds": 86400, "usages": ["client auth"], "username": "mallory"},
        "status": {"conditions": [{"type": "Approved", "status": "True"}]}
    }))
    .unwrap()
}

fn condition_types(csr: &CertificateSigningRequest) -> Vec<String> {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.type_.clone())
        .collect()
}

#[tokio::test]
async fn csr_approval_and_status_subresources() {
    let cluster = start().await;
    let csrs: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());

    let created = csrs
        .create(&PostParams::default(), &csr("fake", &request_pem()))
        .await
        .unwrap();
    let spec = &created.spec;
    assert_eq!(
        spec.username.as_deref(),
        Some("system:admin"),
        "the requester is recorded"
    );
    assert!(
        spec.groups
            .as_ref()
            .unwrap()
            .contains(&"system:authenticated".to_owned())
    );
    assert!(
        condition_types(&created).is_empty(),
        "a new request has no conditions"
    );

    // kube-rs's csr_can_be_approved: any condition type through /approval.
    let approval = json!({"status": {"conditions": [{"type": "ApprovedFake", "status": "True",
        "reason": "kube-rsClient", "message": "ApprovedFake by kube-rs client"}]}});
    csrs.patch_approval("fake", &PatchParams::default(), &Patch::Merge(&approval))
        .await
        .unwrap();
    let approved = csrs.get_approval("fake").await.unwrap();
    assert_eq!(condition_types(&approved), ["ApprovedFake"]);
    let condition = &approved.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
    assert!(condition.last_update_time.is_some() && condition.last_transition_time.is_some());

    // /approval sets Approved; /status cannot remove it, and writes the certificate.
    let approve = json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}});
    csrs.patch_approval("fake", &PatchParams::default(), &Patch::Merge(&approve))
        .await
        .unwrap();
    let status = json!({"status": {"certificate": base64::engine::general_purpose::STANDARD.encode("cert"),
        "conditions": [{"type": "Failed", "status": "True"}]}});
    let after = csrs
        .patch_status("fake", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(condition_types(&after), ["Failed", "Approved"]);
    assert!(after.status.as_ref().unwrap().certificate.is_some());

    // The spec never changes.
    let spec_change = json!({"spec": {"signerName": "example.com/other"}});
    let unchanged = csrs
        .patch("fake", &PatchParams::default(), &Patch::Merge(&spec_change))
        .await
        .unwrap();
    assert_eq!(unchanged.spec.signer_name, "kubernetes.io/kube-apiserver-client");

    csrs.delete("fake", &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn invalid_csr_is_rejected_as_upstream() {
    let cluster = start().await;
    let csrs: Api<CertificateSigningRequest> = Api::all(cluster.client.clone());
    let not_a_request = base64::engine::general_purpose::STANDARD
        .encode("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n");
    let mut bad = csr("bad", &not_a_request);
    bad.spec.usages = Some(vec!["client auth".into(), "flying".into()]);
    bad.spec.expiration_seconds = Some(60);
    let Err(Error::Api(status)) = csrs.create(&PostParams::default(), &bad).await else {
        panic!("an invalid request was accepted");
    };
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert!(
        status
            .message
            .starts_with("CertificateSigningRequest.certificates.k8s.io \"bad\" is invalid: [spec.request: Invalid value: []byte{0x2d, "),
        "{}",
        status.message
    );
    assert!(status.message.contains(": PEM block type must be CERTIFICATE REQUEST, spec.usages[1]: Unsupported value: \"flying\": supported values: "));
    assert!(status.message.ends_with(
        "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)]"
    ));
}
