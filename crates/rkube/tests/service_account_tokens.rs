//! ServiceAccount tokens end to end: `kubectl create token` (TokenRequest) against a real
//! `rkube server`, and the server accepting the token as the account afterwards.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

fn wait_for_default_account(server: &Server, namespace: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server
        .kubectl(&["get", "serviceaccount", "default", "-n", namespace])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "no default ServiceAccount");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server's kubeconfig without the admin certificate: who calls is the bearer token.
fn certless_kubeconfig(server: &Server) -> PathBuf {
    let path = server.dir.path().join("certless.yaml");
    let config = std::fs::read_to_string(&server.kubeconfig).unwrap();
    let kept: Vec<&str> = config
        .lines()
        .filter(|l| !l.contains("client-certificate-data") && !l.contains("client-key-data"))
        .collect();
    std::fs::write(&path, kept.join("\n")).unwrap();
    path
}

fn as_token(server: &Server, token: &str, args: &[&str]) -> std::process::Output {
    kubectl_command(
        KUBECTL_1_33,
        &certless_kubeconfig(server),
        &server.dir.path().join("cache-token"),
    )
    .args(["--token", token])
    .args(args)
    .output()
    .unwrap()
}

fn claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn kubectl_create_token_is_accepted_as_the_service_account() {
    let server = Server::start_with_root_ca(&[]);
    wait_for_default_account(&server, "default");
    let token = server.ok(&["create", "token", "default"]).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let claims = claims(&token);
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");
    assert_eq!(claims["iss"], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(claims["aud"][0], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(claims["kubernetes.io"]["namespace"], "default");
    let uid = server.ok(&["get", "sa", "default", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["uid"], uid.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );

    let out = as_token(
        &server,
        &token,
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo}"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["username"], "system:serviceaccount:default:default");
    assert_eq!(
        info["groups"],
        serde_json::json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    let out = as_token(
        &server,
        &token,
        &["get", "configmaps", "-n", "kube-system", "-o", "name"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A TokenReview says the same.
    let review = server.manifest(
        "review.yaml",
        &format!("apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n"),
    );
    let answer = json_of(&server.ok(&["create", "-f", &review, "-o", "json"]));
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
    assert_eq!(
        answer["status"]["user"]["username"],
        "system:serviceaccount:default:default"
    );

    // A tampered token, or one whose account is gone, is refused.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let out = as_token(&server, &forged, &["get", "configmaps"]);
    assert!(!out.status.success());
    // An account deleted (and even recreated by the same name) ends its tokens.
    server.ok(&["create", "serviceaccount", "robot"]);
    let robot = server.ok(&["create", "token", "robot"]).trim().to_owned();
    assert!(as_token(&server, &robot, &["get", "configmaps"]).status.success());
    server.ok(&["delete", "sa", "robot"]);
    let out = as_token(&server, &robot, &["get", "configmaps"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Unauthorized"), "{stderr}");
    let review = |token: &str| {
        let file = server.manifest(
            "review.yaml",
            &format!("apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n"),
        );
        json_of(&server.ok(&["create", "-f", &file, "-o", "json"]))
    };
    let answer = review(&robot);
    assert_eq!(answer["status"]["authenticated"], false);
    assert_eq!(answer["status"]["error"], "serviceaccount \"robot\" not found");
    server.ok(&["create", "serviceaccount", "robot"]);
    let answer = review(&robot);
    assert!(
        answer["status"]["error"]
            .as_str()
            .unwrap()
            .contains("does not match claim"),
        "{answer}"
    );
}

#[test]
fn token_requests_are_validated_as_upstream() {
    let server = Server::start_with_root_ca(&[]);
    wait_for_default_account(&server, "default");
    let err = server.fails(&["create", "token", "default", "--duration=5m"]);
    assert!(
        err.contains(
            "spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"
        ),
        "{err}"
    );
    let err = server.fails(&["create", "token", "nobody"]);
    assert!(err.contains("serviceaccounts \"nobody\" not found"), "{err}");
    let token = server
        .ok(&[
            "create",
            "token",
            "default",
            "--duration=2h",
            "--audience=a",
            "--audience=b",
        ])
        .trim()
        .to_owned();
    let audience_claims = claims(&token);
    assert_eq!(audience_claims["aud"], serde_json::json!(["a", "b"]));
    assert_eq!(
        audience_claims["exp"].as_i64().unwrap() - audience_claims["iat"].as_i64().unwrap(),
        7200
    );
    // Not for the API server's audience: not accepted there.
    assert!(!as_token(&server, &token, &["get", "configmaps"]).status.success());

    // Bound to a pod: the pod's name and uid are in the token, and deleting the pod ends it.
    server.ok(&["run", "p", "--image=busybox"]);
    let pod_uid = server.ok(&["get", "pod", "p", "-o", "jsonpath={.metadata.uid}"]);
    let token = server
        .ok(&[
            "create",
            "token",
            "default",
            "--bound-object-kind=Pod",
            "--bound-object-name=p",
        ])
        .trim()
        .to_owned();
    let pod_claim = &claims(&token)["kubernetes.io"]["pod"];
    assert_eq!(pod_claim["name"], "p");
    assert_eq!(pod_claim["uid"], pod_uid.as_str());
    let out = as_token(&server, &token, &["auth", "whoami", "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let whoami: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        whoami["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"],
        serde_json::json!(["p"])
    );
    server.ok(&["delete", "pod", "p", "--grace-period=0", "--force"]);
    assert!(!as_token(&server, &token, &["get", "configmaps"]).status.success());

    // OIDC discovery.
    let config = json_of(&server.ok(&["get", "--raw", "/.well-known/openid-configuration"]));
    assert_eq!(config["issuer"], "https://kubernetes.default.svc.cluster.local");
    let jwks = json_of(&server.ok(&["get", "--raw", "/openid/v1/jwks"]));
    assert_eq!(jwks["keys"][0]["kty"], "EC");
}

fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn wait_for_root_ca(server: &Server, namespace: &str, ca: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = server.kubectl(&[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            namespace,
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ]);
        if out.status.success() && String::from_utf8_lossy(&out.stdout) == ca {
            return;
        }
        assert!(Instant::now() < deadline, "no kube-root-ca.crt in {namespace}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_namespace_gets_the_root_ca_config_map() {
    let server = Server::start_with_root_ca(&[]);
    let ca = std::fs::read_to_string(server.dir.path().join("data/tls/ca.crt")).unwrap();
    wait_for_root_ca(&server, "default", &ca);
    server.ok(&["create", "namespace", "fresh"]);
    wait_for_root_ca(&server, "fresh", &ca);
    let description = server.ok(&[
        "get",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "fresh",
        "-o",
        "jsonpath={.metadata.annotations.kubernetes\\.io/description}",
    ]);
    assert!(description.starts_with("Contains a CA bundle"), "{description}");
    // Deleted: put back; edited: set right again.
    server.ok(&["delete", "configmap", "kube-root-ca.crt", "-n", "fresh"]);
    wait_for_root_ca(&server, "fresh", &ca);
    server.ok(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "fresh",
        "-p",
        r#"{"data":{"ca.crt":"tampered"}}"#,
    ]);
    wait_for_root_ca(&server, "fresh", &ca);
}
