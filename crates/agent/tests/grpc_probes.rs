//! grpc probes against a small `grpc.health.v1.Health` server (h2c) on 127.0.0.1 in the node's
//! network namespace: serving, not serving, unknown services, timeouts, servers without the
//! health service, nothing listening — with upstream's output texts.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use agent::probes::{Handler, Outcome, Purpose, Target, run_handler};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Container, GRPCAction};
use tokio::net::TcpListener;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A Check answer: the service "" serves, "down" does not, "slow" answers after 3 s, others
/// are unknown (NotFound, as grpc-go's health server). `implemented: false` answers every call
/// with Unimplemented in a trailers-only response.
async fn health(
    request: hyper::Request<Incoming>,
    implemented: bool,
) -> Result<hyper::Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let trailers_only = |code: &str, message: &str| {
        hyper::Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", code)
            .header("grpc-message", message)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap()
    };
    if !implemented || path != "/grpc.health.v1.Health/Check" {
        return Ok(trailers_only("12", "unknown%20service%20grpc.health.v1.Health"));
    }
    let service = String::from_utf8_lossy(body.get(7..).unwrap_or_default()).into_owned();
    let status = match service.as_str() {
        "" => 1u8,
        "down" => 2,
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            1
        }
        _ => return Ok(trailers_only("5", "unknown service")),
    };
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let message = Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]);
    let body = Full::new(message)
        .with_trailers(async move { Some(Ok(trailers)) })
        .boxed();
    Ok(hyper::Response::builder()
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap())
}

async fn server(implemented: bool) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |r| health(r, implemented));
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

async fn probe(port: u16, service: &str) -> Outcome {
    let target = Target {
        runtime: Arc::new(runtime::fake::FakeRuntime::default()),
        container_id: "unused".into(),
        pod_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        netns: None,
    };
    let action = GRPCAction {
        port: port.into(),
        service: (!service.is_empty()).then(|| service.to_owned()),
    };
    let c = Container::default();
    run_handler(
        Handler::Grpc(&action),
        Purpose::Probe,
        &c,
        &target,
        Some(Duration::from_secs(1)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_health_checks_with_upstream_outputs() {
    let port = server(true).await;
    assert_eq!(probe(port, "").await, Outcome::Success("service healthy".into()));
    assert_eq!(
        probe(port, "down").await,
        Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    assert_eq!(
        probe(port, "other").await,
        Outcome::Failure(
            "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service".into()
        )
    );
    assert_eq!(
        probe(port, "slow").await,
        Outcome::Failure("timeout: health rpc did not complete within 1s".into())
    );

    let without = server(false).await;
    assert_eq!(
        probe(without, "").await,
        Outcome::Failure(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health"
                .into()
        )
    );

    let closed = testkit::free_port();
    assert_eq!(
        probe(closed, "").await,
        Outcome::Failure(format!(
            "timeout: failed to connect service \"127.0.0.1:{closed}\" within 1s: context deadline exceeded"
        ))
    );
}
