//! The grpc handler, as upstream's `pkg/probe/grpc`: `grpc.health.v1.Health/Check` over
//! plaintext HTTP/2 (no credentials), within the timeout; SERVING succeeds, anything else fails
//! with grpc-health-probe's wording. Dialing retries until the deadline (gRPC's blocking dial),
//! so an unreachable port is a connect timeout.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::GRPCAction;
use tokio::time::Instant;

use super::handler::pod_ip;
use super::{KUBE_VERSION, Outcome, Target, go_quote};

pub(crate) async fn probe(action: &GRPCAction, target: &Target, timeout: Option<Duration>) -> Outcome {
    let timeout = timeout.unwrap_or(Duration::from_secs(1));
    let Ok(port) = u16::try_from(action.port) else {
        return Outcome::Error(format!("invalid port number: {}", action.port));
    };
    let ip = match pod_ip(target, port) {
        Ok(ip) => ip,
        Err(err) => return Outcome::Failure(err),
    };
    let addr = std::net::SocketAddr::new(ip, port);
    let service = action.service.clone().unwrap_or_default();
    let deadline = Instant::now() + timeout;
    let shown = go_quote(&addr.to_string());
    let within = go_duration(timeout);

    // gRPC's blocking dial: keep trying until the deadline.
    let stream = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match super::dial::dial(addr, target.netns.as_deref(), left).await {
            Ok(stream) => break stream,
            Err(_) if Instant::now() + Duration::from_millis(100) < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => {
                return Outcome::Failure(format!(
                    "timeout: failed to connect service {shown} within {within}: context deadline exceeded"
                ));
            }
        }
    };
    match tokio::time::timeout_at(deadline, check(stream, &addr.to_string(), &service, timeout)).await {
        Err(_) => Outcome::Failure(format!("timeout: health rpc did not complete within {within}")),
        Ok(Err(RpcError { code: 12, message })) => Outcome::Failure(format!(
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {message}"
        )),
        Ok(Err(RpcError { code: 4, .. })) => {
            Outcome::Failure(format!("timeout: health rpc did not complete within {within}"))
        }
        Ok(Err(RpcError { code, message })) => Outcome::Failure(format!(
            "error: health rpc probe failed: rpc error: code = {} desc = {message}",
            code_name(code)
        )),
        Ok(Ok(1)) => Outcome::Success("service healthy".into()),
        Ok(Ok(status)) => Outcome::Failure(format!(
            "service unhealthy (responded with {})",
            go_quote(&serving_status_name(status))
        )),
    }
}

struct RpcError {
    code: u32,
    message: String,
}

impl RpcError {
    fn new(code: u32, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }
}

/// One `Check` call; the response's serving status.
async fn check(
    stream: tokio::net::TcpStream,
    authority: &str,
    service: &str,
    timeout: Duration,
) -> Result<u64, RpcError> {
    let unavailable =
        |e: hyper::Error| RpcError::new(14, format!("connection error: desc = \"transport: {e}\""));
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(unavailable)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    // HealthCheckRequest { string service = 1; }, length-prefixed, uncompressed.
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a);
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let request = hyper::Request::post(format!("http://{authority}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", format!("kube-probe/{KUBE_VERSION}"))
        .header("grpc-timeout", format!("{}m", timeout.as_millis().max(1)))
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| RpcError::new(13, e.to_string()))?;
    let response = sender.send_request(request).await.map_err(unavailable)?;
    let http_status = response.status();
    if http_status != hyper::StatusCode::OK {
        // grpc-go's mapping of HTTP statuses to codes.
        let code = match http_status.as_u16() {
            400 => 13,
            401 => 16,
            403 => 7,
            404 => 12,
            429 | 502..=504 => 14,
            _ => 2,
        };
        return Err(RpcError::new(
            code,
            format!(
                "unexpected HTTP status code received from server: {} ({})",
                http_status.as_u16(),
                http_status.canonical_reason().unwrap_or("")
            ),
        ));
    }
    let head_status = grpc_status(response.headers());
    let collected = response.into_body().collect().await.map_err(unavailable)?;
    let trailers = collected.trailers().cloned();
    let data = collected.to_bytes();
    let (code, message) = trailers
        .as_ref()
        .and_then(grpc_status)
        .or(head_status)
        .unwrap_or((2, "server closed the stream without sending trailers".into()));
    if code != 0 {
        return Err(RpcError::new(code, message));
    }
    // HealthCheckResponse { ServingStatus status = 1; }
    let payload = data.get(5..).unwrap_or_default();
    Ok(read_status(payload))
}

fn grpc_status(headers: &http::HeaderMap) -> Option<(u32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some((code, message))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Field 1 (varint) of a HealthCheckResponse; 0 (UNKNOWN) when absent.
fn read_status(mut payload: &[u8]) -> u64 {
    let mut status = 0;
    while let Some((key, rest)) = varint(payload) {
        payload = rest;
        match key & 7 {
            0 => {
                let Some((value, rest)) = varint(payload) else {
                    break;
                };
                if key >> 3 == 1 {
                    status = value;
                }
                payload = rest;
            }
            2 => {
                let Some((len, rest)) = varint(payload) else { break };
                payload = rest.get(len as usize..).unwrap_or_default();
            }
            1 => payload = payload.get(8..).unwrap_or_default(),
            5 => payload = payload.get(4..).unwrap_or_default(),
            _ => break,
        }
    }
    status
}

fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        n => n.to_string(),
    }
}

fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("Code({code})"), |n| (*n).to_owned())
}

/// Go's `time.Duration` `%v` for whole seconds: `1s`, `1m30s`, `1h0m0s`.
pub(crate) fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m{}s", s / 3600, s % 3600 / 60, s % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go() {
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn health_messages() {
        assert_eq!(read_status(&[0x08, 0x02]), 2);
        assert_eq!(read_status(&[]), 0);
        assert_eq!(read_status(&[0x12, 0x01, 0x41, 0x08, 0x01]), 1);
        assert_eq!(percent_decode("unknown%20service"), "unknown service");
        assert_eq!(code_name(5), "NotFound");
    }
}
