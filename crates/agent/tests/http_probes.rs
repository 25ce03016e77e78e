//! httpGet probes and hooks against small servers on 127.0.0.1 in the node's own network
//! namespace (no container needed): HTTPS without certificate verification, redirect chains
//! and their limit, host names, and a lifecycle hook's HTTPS → HTTP fallback.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::probes::lifecycle::run_hook;
use agent::probes::{EventSink, Handler, Outcome, Purpose, Target, run_handler};
use clientkit::events::EventType;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers each connection after its first read: `/` and `/loop` redirect (to `/next`, to
/// itself), `/host` is 200 with the request's Host, anything else 200 with its User-Agent.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap_or(0);
    let request = String::from_utf8_lossy(&buf[..n]).into_owned();
    let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
    let header = |name: &str| {
        request
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or("none")
            .to_owned()
    };
    // The body: the request's Host on /host, its User-Agent elsewhere.
    let agent = if path == "/host" {
        header("Host")
    } else {
        header("User-Agent")
    };
    let response = match path.as_str() {
        "/" => "HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_owned(),
        "/loop" => "HTTP/1.1 301 Moved\r\nLocation: /loop\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_owned(),
        _ => format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{agent}",
            agent.len()
        ),
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn plain_server() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    });
    port
}

async fn tls_server() -> u16 {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], der)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    answer(tls).await;
                }
            });
        }
    });
    port
}

fn target() -> Target {
    Target {
        runtime: Arc::new(runtime::fake::FakeRuntime::default()),
        container_id: "unused".into(),
        pod_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        netns: None,
    }
}

fn get(scheme: &str, path: &str, port: u16) -> HTTPGetAction {
    HTTPGetAction {
        scheme: Some(scheme.into()),
        path: Some(path.into()),
        port: IntOrString::Int(port.into()),
        ..Default::default()
    }
}

async fn probe(action: HTTPGetAction) -> Outcome {
    let c = Container::default();
    run_handler(
        Handler::HttpGet(&action),
        Purpose::Probe,
        &c,
        &target(),
        Some(Duration::from_secs(2)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn https_without_verification_and_redirect_chains() {
    let tls = tls_server().await;
    let plain = plain_server().await;
    assert_eq!(
        probe(get("HTTPS", "/x", tls)).await,
        Outcome::Success("kube-probe/1.33".into())
    );
    // Same-host redirects are followed, up to Go's limit of 10.
    assert_eq!(
        probe(get("HTTP", "/", plain)).await,
        Outcome::Success("kube-probe/1.33".into())
    );
    assert_eq!(
        probe(get("HTTP", "/loop", plain)).await,
        Outcome::Failure(format!(
            "Get \"http://127.0.0.1:{plain}/loop\": stopped after 10 redirects"
        ))
    );
    // The Host header: the URL's authority, unless the handler sets one.
    assert_eq!(
        probe(get("HTTP", "/host", plain)).await,
        Outcome::Success(format!("127.0.0.1:{plain}"))
    );
    let mut host = get("HTTP", "/host", plain);
    host.http_headers = Some(vec![k8s_openapi::api::core::v1::HTTPHeader {
        name: "host".into(),
        value: "example.com".into(),
    }]);
    assert_eq!(probe(host).await, Outcome::Success("example.com".into()));
    // A host name is resolved by the node.
    let mut named = get("HTTP", "/x", plain);
    named.host = Some("localhost".into());
    assert_eq!(probe(named).await, Outcome::Success("kube-probe/1.33".into()));
    let mut unknown = get("HTTP", "/x", plain);
    unknown.host = Some("no-such-host.invalid".into());
    assert_eq!(
        probe(unknown).await,
        Outcome::Failure(format!(
            "Get \"http://no-such-host.invalid:{plain}/x\": dial tcp: lookup no-such-host.invalid: no such host"
        ))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_hook_answered_in_plain_http_is_retried_over_http() {
    let plain = plain_server().await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink: EventSink = {
        let events = events.clone();
        Arc::new(move |kind, reason, message| events.lock().unwrap().push((kind, reason, message)))
    };
    let hook = LifecycleHandler {
        http_get: Some(get("HTTPS", "/hook", plain)),
        ..Default::default()
    };
    run_hook(&hook, &Container::default(), &target(), "p_ns(uid)", &sink)
        .await
        .unwrap();
    assert_eq!(
        *events.lock().unwrap(),
        [(
            EventType::Warning,
            "LifecycleHTTPFallback",
            format!(
                "request to HTTPS lifecycle hook 127.0.0.1:{plain} got HTTP response, retry with HTTP succeeded"
            )
        )]
    );
    // The probe itself does not fall back.
    assert_eq!(
        probe(get("HTTPS", "/x", plain)).await,
        Outcome::Failure(format!(
            "Get \"https://127.0.0.1:{plain}/x\": http: server gave HTTP response to HTTPS client"
        ))
    );
}
