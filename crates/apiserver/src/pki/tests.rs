use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

const FILES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "serving.crt",
    "serving.key",
    "admin.crt",
    "admin.key",
];

fn names(ips: &[&str], dns: &[&str]) -> ServingNames {
    ServingNames {
        ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        dns: dns.iter().map(|d| d.to_string()).collect(),
    }
}

fn contents(dir: &Path) -> Vec<Vec<u8>> {
    FILES.iter().map(|f| fs::read(dir.join(f)).unwrap()).collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn der_of(pem: &str) -> CertificateDer<'static> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
}

fn sans_of(pem: &str) -> (BTreeSet<String>, BTreeSet<IpAddr>) {
    let der = der_of(pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert_sans(&cert).unwrap()
}

fn kubectl() -> Option<&'static str> {
    let ok = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("kubectl not found; skipping");
    }
    ok.then_some("kubectl")
}

#[test]
fn creates_everything_with_the_right_names_and_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data/tls");
    let pki = Pki::load_or_create(
        &dir,
        &names(&["10.43.0.1", "192.168.1.5", "0.0.0.0"], &["api.example.com"]),
    )
    .unwrap();

    assert_eq!(mode(&dir), 0o700);
    for f in FILES {
        let want = if f.ends_with(".key") { 0o600 } else { 0o644 };
        assert_eq!(mode(&dir.join(f)), want, "{f}");
    }

    let ca_der = der_of(&fs::read_to_string(dir.join("ca.crt")).unwrap());
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(ca.is_ca());
    let cn = ca.subject().iter_common_name().next().unwrap().as_str().unwrap();
    assert!(cn.starts_with("rkube-ca@"), "{cn}");
    let years = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp()) / (365 * 86400);
    assert_eq!(years, 10);
    assert_eq!(pki.ca_cert_pem(), fs::read_to_string(dir.join("ca.crt")).unwrap());

    let serving_pem = fs::read_to_string(dir.join("serving.crt")).unwrap();
    let (dns, ips) = sans_of(&serving_pem);
    for d in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "api.example.com",
    ] {
        assert!(dns.contains(d), "{d} missing in {dns:?}");
    }
    if let Some(h) = hostname().filter(|h| is_dns_name(h)) {
        assert!(dns.contains(&h), "host name {h} missing");
    }
    for ip in ["127.0.0.1", "::1", "10.43.0.1", "192.168.1.5"] {
        assert!(ips.contains(&ip.parse().unwrap()), "{ip} missing in {ips:?}");
    }
    assert!(!ips.contains(&IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    let serving_der = der_of(&serving_pem);
    let (_, serving) = x509_parser::parse_x509_certificate(&serving_der).unwrap();
    let eku = serving.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    serving.verify_signature(Some(ca.public_key())).unwrap();
}

#[test]
fn a_second_load_reuses_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let n = names(&["10.43.0.1"], &[]);
    let first = Pki::load_or_create(tmp.path(), &n).unwrap();
    let before = contents(tmp.path());
    let second = Pki::load_or_create(tmp.path(), &n).unwrap();
    assert_eq!(contents(tmp.path()), before);
    assert_eq!(first.ca_cert_pem(), second.ca_cert_pem());
    assert_eq!(first.admin().cert_pem, second.admin().cert_pem);
    assert_eq!(first.admin().key_pem, second.admin().key_pem);
}

#[test]
fn a_new_name_reissues_only_the_serving_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    Pki::load_or_create(tmp.path(), &names(&["10.43.0.1"], &[])).unwrap();
    let before = contents(tmp.path());

    let wider = names(&["10.43.0.1", "192.168.7.7"], &["node.example"]);
    Pki::load_or_create(tmp.path(), &wider).unwrap();
    let after = contents(tmp.path());
    for (i, f) in FILES.iter().enumerate() {
        let changed = f.starts_with("serving");
        assert_eq!(before[i] != after[i], changed, "{f}");
    }
    let (dns, ips) = sans_of(&fs::read_to_string(tmp.path().join("serving.crt")).unwrap());
    assert!(ips.contains(&"192.168.7.7".parse().unwrap()));
    assert!(dns.contains("node.example"));

    // Fewer names than the certificate covers: nothing to do.
    Pki::load_or_create(tmp.path(), &names(&[], &[])).unwrap();
    assert_eq!(contents(tmp.path()), after);
}

#[test]
fn a_leaf_of_another_ca_is_reissued() {
    let tmp = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    Pki::load_or_create(tmp.path(), &ServingNames::default()).unwrap();
    Pki::load_or_create(other.path(), &ServingNames::default()).unwrap();
    for f in ["admin.crt", "admin.key"] {
        fs::copy(other.path().join(f), tmp.path().join(f)).unwrap();
    }
    let pki = Pki::load_or_create(tmp.path(), &ServingNames::default()).unwrap();
    assert_ne!(
        fs::read(tmp.path().join("admin.crt")).unwrap(),
        fs::read(other.path().join("admin.crt")).unwrap()
    );
    let (_, ca) = x509_parser::parse_x509_certificate(pki.ca_cert_der()).unwrap();
    let admin_der = der_of(&pki.admin().cert_pem);
    let (_, admin) = x509_parser::parse_x509_certificate(&admin_der).unwrap();
    admin.verify_signature(Some(ca.public_key())).unwrap();
}

#[test]
fn the_admin_certificate_is_signed_by_the_ca_and_names_the_admin() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(tmp.path(), &ServingNames::default()).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(pki.ca_cert_der()).unwrap();
    let der = der_of(&pki.admin().cert_pem);
    let (_, admin) = x509_parser::parse_x509_certificate(&der).unwrap();
    admin.verify_signature(Some(ca.public_key())).unwrap();
    let eku = admin.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert_eq!(
        identity_from_cert(&der),
        Some(UserInfo {
            name: "system:admin".into(),
            groups: vec!["system:masters".into()],
            ..UserInfo::default()
        })
    );
    let node = pki
        .issue_client_cert("system:node:n1", Some("system:nodes"))
        .unwrap();
    let user = identity_from_cert(&der_of(&node.cert_pem)).unwrap();
    assert_eq!(
        (user.name.as_str(), user.groups),
        ("system:node:n1", vec!["system:nodes".to_owned()])
    );
    assert_eq!(identity_from_cert(b"not a certificate"), None);
}

#[test]
fn a_broken_ca_is_an_error_naming_the_file_and_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    Pki::load_or_create(tmp.path(), &ServingNames::default()).unwrap();

    fs::write(tmp.path().join("ca.crt"), "garbage\n").unwrap();
    let err = format!(
        "{:#}",
        Pki::load_or_create(tmp.path(), &ServingNames::default()).unwrap_err()
    );
    assert!(err.contains("ca.crt"), "{err}");
    assert_eq!(
        fs::read_to_string(tmp.path().join("ca.crt")).unwrap(),
        "garbage\n"
    );

    fs::remove_file(tmp.path().join("ca.crt")).unwrap();
    let err = format!(
        "{:#}",
        Pki::load_or_create(tmp.path(), &ServingNames::default()).unwrap_err()
    );
    assert!(err.contains("ca.crt") && err.contains("missing"), "{err}");
    assert!(!tmp.path().join("ca.crt").exists());
}

#[test]
fn a_corrupt_key_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    Pki::load_or_create(tmp.path(), &ServingNames::default()).unwrap();
    fs::write(
        tmp.path().join("serving.key"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = format!(
        "{:#}",
        Pki::load_or_create(tmp.path(), &ServingNames::default()).unwrap_err()
    );
    assert!(err.contains("serving.key"), "{err}");
}

#[test]
fn the_join_token_is_created_once() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(&tmp.path().join("tls"), &ServingNames::default()).unwrap();
    let path = tmp.path().join("server/token");
    let token = load_or_create_token(&path, &pki).unwrap();
    let hash = hex(ring::digest::digest(
        &ring::digest::SHA256,
        &fs::read(tmp.path().join("tls/ca.crt")).unwrap(),
    )
    .as_ref());
    let secret = token.strip_prefix(&format!("K10{hash}::server:")).unwrap();
    assert_eq!(secret.len(), 32);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(mode(&path), 0o600);
    assert_eq!(load_or_create_token(&path, &pki).unwrap(), token);

    fs::write(&path, "  \n").unwrap();
    let err = format!("{:#}", load_or_create_token(&path, &pki).unwrap_err());
    assert!(err.contains("token"), "{err}");
}

#[test]
fn kubectl_reads_the_kubeconfig() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(&tmp.path().join("tls"), &ServingNames::default()).unwrap();
    let path = tmp.path().join("new/dir/kubeconfig.yaml");
    write_kubeconfig(&path, "https://127.0.0.1:6443", &pki, ADMIN_USER).unwrap();
    assert_eq!(mode(&path), 0o600);
    let Some(kubectl) = kubectl() else { return };
    let view = |jsonpath: &str| {
        let out = Command::new(kubectl)
            .args(["config", "view", "--raw", "--kubeconfig"])
            .arg(&path)
            .arg(format!("-o=jsonpath={jsonpath}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(view("{.clusters[0].cluster.server}"), "https://127.0.0.1:6443");
    assert_eq!(view("{.current-context}"), "default");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    assert_eq!(
        view("{.users[0].user.client-certificate-data}"),
        b64(&pki.admin().cert_pem)
    );
    assert_eq!(
        view("{.clusters[0].cluster.certificate-authority-data}"),
        b64(pki.ca_cert_pem())
    );
}

/// Accepts one TLS connection and answers with the client's identity (or "anonymous").
async fn answer_identity(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> anyhow::Result<Option<UserInfo>> {
    let (tcp, _) = listener.accept().await?;
    let mut tls = TlsAcceptor::from(config).accept(tcp).await?;
    let user = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| identity_from_cert(c));
    let reply = user.as_ref().map_or("anonymous".to_owned(), |u| {
        format!("{} {}", u.name, u.groups.join(","))
    });
    tls.write_all(reply.as_bytes()).await?;
    tls.shutdown().await?;
    Ok(user)
}

async fn ask_identity(addr: std::net::SocketAddr, config: Arc<ClientConfig>) -> anyhow::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let mut reply = String::new();
    tls.read_to_string(&mut reply).await?;
    Ok(reply)
}

#[tokio::test]
async fn tls_round_trip_with_and_without_a_client_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(tmp.path(), &ServingNames::default()).unwrap();
    let server = pki.server_config().unwrap();
    assert_eq!(server.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);

    // The admin certificate: verified, and mapped to the admin identity.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(answer_identity(listener, server.clone()));
    let reply = ask_identity(addr, pki.client_config(Some(pki.admin())).unwrap())
        .await
        .unwrap();
    assert_eq!(reply, "system:admin system:masters");
    let user = served.await.unwrap().unwrap().unwrap();
    assert_eq!(
        (user.name.as_str(), user.groups),
        ("system:admin", vec!["system:masters".to_owned()])
    );

    // No certificate: the handshake still succeeds (bearer tokens ride on top).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(answer_identity(listener, server.clone()));
    assert_eq!(
        ask_identity(addr, pki.client_config(None).unwrap())
            .await
            .unwrap(),
        "anonymous"
    );
    assert_eq!(served.await.unwrap().unwrap(), None);

    // A certificate from another CA is refused.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::load_or_create(other_dir.path(), &ServingNames::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(answer_identity(listener, server.clone()));
    assert!(
        ask_identity(addr, pki.client_config(Some(other.admin())).unwrap())
            .await
            .is_err()
    );
    assert!(served.await.unwrap().is_err());

    // A client that trusts another CA refuses the server.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(answer_identity(listener, server));
    assert!(
        ask_identity(addr, other.client_config(None).unwrap())
            .await
            .is_err()
    );
    assert!(served.await.unwrap().is_err());
}

/// The full proof for real clients: kubectl (Go's TLS stack) with the written kubeconfig talks
/// to a TLS server using `server_config()`, and the server sees the admin identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_talks_tls_to_the_server() {
    let Some(kubectl) = kubectl() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(&tmp.path().join("tls"), &ServingNames::default()).unwrap();
    // The stand-in server below speaks HTTP/1.1 only.
    let mut config = (*pki.server_config().unwrap()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| identity_from_cert(c));
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let first_line = String::from_utf8_lossy(&request)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            let _ = seen_tx.send((first_line, user));
            let body = r#"{"major":"1","minor":"33","gitVersion":"v1.33.0+rkube","gitCommit":"","gitTreeState":"clean","buildDate":"2025-01-01T00:00:00Z","goVersion":"","compiler":"rustc","platform":"linux/amd64"}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(response.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });

    let kubeconfig = tmp.path().join("kubeconfig.yaml");
    write_kubeconfig(
        &kubeconfig,
        &format!("https://127.0.0.1:{}", addr.port()),
        &pki,
        ADMIN_USER,
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(kubectl)
            .args(["version", "-o", "json", "--request-timeout=20s", "--kubeconfig"])
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .env("NO_PROXY", "*")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    server.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("v1.33.0+rkube"), "{stdout}");
    let (line, user) = seen_rx.recv().await.unwrap();
    assert!(line.starts_with("GET /version"), "{line}");
    let user = user.expect("kubectl presented no client certificate");
    assert_eq!(
        (user.name.as_str(), user.groups),
        ("system:admin", vec!["system:masters".to_owned()])
    );
}
