//! An in-test registry that demands Bearer tokens, for the paths a Debian `docker-registry`
//! cannot show without a JWT-signing token service: the token flow itself, token scopes that
//! grant nothing (`insufficient_scope`), image indexes, blobs redirected to another origin
//! (which must not see the registry's credentials), and content that does not match its digest.
//!
//! - `GET /token?service=fake&scope=repository:<repo>:pull` wants basic auth `user:password`;
//!   repositories under `private/` get a token that grants nothing.
//! - `/v2/<repo>/manifests/<tag|digest>` and `/v2/<repo>/blobs/<digest>` want `Bearer <token>`;
//!   blobs answer 307 to the "CDN" listener, which refuses requests carrying `Authorization`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

pub fn sha(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

#[derive(Default)]
pub struct Content {
    /// `<repo>/<tag or digest>` → (media type, bytes).
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    /// digest → bytes served (which may not match, on purpose).
    pub blobs: HashMap<String, Vec<u8>>,
}

pub struct FakeRegistry {
    pub port: u16,
    pub content: Arc<Mutex<Content>>,
    /// Tokens issued, and the paths the CDN served.
    pub log: Arc<Mutex<Vec<String>>>,
}

struct State {
    port: u16,
    cdn_port: u16,
    user: String,
    password: String,
    content: Arc<Mutex<Content>>,
    log: Arc<Mutex<Vec<String>>>,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

impl FakeRegistry {
    /// Starts the registry and its CDN on free loopback ports (tasks of the current runtime).
    pub async fn start(user: &str, password: &str) -> FakeRegistry {
        let registry = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cdn = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let content = Arc::new(Mutex::new(Content::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            port: registry.local_addr().unwrap().port(),
            cdn_port: cdn.local_addr().unwrap().port(),
            user: user.to_owned(),
            password: password.to_owned(),
            content: content.clone(),
            log: log.clone(),
        });
        serve(registry, state.clone(), registry_route);
        serve(cdn, state.clone(), cdn_route);
        FakeRegistry {
            port: state.port,
            content,
            log,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn serve(listener: TcpListener, state: Arc<State>, route: fn(&State, &Request<Incoming>) -> Reply) {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let response = route(&state, &request);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn header<'a>(request: &'a Request<Incoming>, name: &str) -> &'a str {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn registry_route(state: &State, request: &Request<Incoming>) -> Reply {
    let path = request.uri().path();
    if path == "/token" {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", state.user, state.password))
        );
        if header(request, "authorization") != expected {
            return reply(
                StatusCode::UNAUTHORIZED,
                r#"{"details":"incorrect username or password"}"#,
            );
        }
        let query = request.uri().query().unwrap_or_default();
        let scope = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let token = if scope.starts_with("repository:private/") {
            "grants-nothing".to_owned()
        } else {
            format!("token-for-{scope}")
        };
        state.log.lock().unwrap().push(format!("token {scope}"));
        return reply(
            StatusCode::OK,
            format!(r#"{{"token":"{token}","expires_in":300}}"#),
        );
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return reply(StatusCode::NOT_FOUND, "");
    };
    let (repo, kind, object) = match rest.rsplitn(3, '/').collect::<Vec<_>>()[..] {
        [object, kind, repo] => (repo, kind, object),
        _ => return reply(StatusCode::NOT_FOUND, ""),
    };
    let presented = header(request, "authorization");
    let wanted = format!("Bearer token-for-repository:{repo}:pull");
    if presented != wanted {
        let mut challenge = format!(
            r#"Bearer realm="http://127.0.0.1:{}/token",service="fake",scope="repository:{repo}:pull""#,
            state.port
        );
        if !presented.is_empty() {
            challenge.push_str(r#",error="insufficient_scope""#);
        }
        let mut response = reply(
            StatusCode::UNAUTHORIZED,
            r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
        );
        response
            .headers_mut()
            .insert("www-authenticate", challenge.parse().unwrap());
        return response;
    }
    let content = state.content.lock().unwrap();
    match kind {
        "manifests" => match content.manifests.get(&format!("{repo}/{object}")) {
            Some((media_type, bytes)) => {
                let mut response = reply(StatusCode::OK, bytes.clone());
                let headers = response.headers_mut();
                headers.insert("content-type", media_type.parse().unwrap());
                headers.insert("docker-content-digest", sha(bytes).parse().unwrap());
                response
            }
            None => reply(
                StatusCode::NOT_FOUND,
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            ),
        },
        "blobs" if content.blobs.contains_key(object) => {
            let mut response = reply(StatusCode::TEMPORARY_REDIRECT, "");
            response.headers_mut().insert(
                "location",
                format!("http://127.0.0.1:{}/cdn/{object}?signature=x", state.cdn_port)
                    .parse()
                    .unwrap(),
            );
            response
        }
        _ => reply(StatusCode::NOT_FOUND, ""),
    }
}

fn cdn_route(state: &State, request: &Request<Incoming>) -> Reply {
    if !header(request, "authorization").is_empty() {
        return reply(StatusCode::BAD_REQUEST, "credentials leaked to the CDN");
    }
    let digest = request.uri().path().trim_start_matches("/cdn/");
    state.log.lock().unwrap().push(format!("cdn {digest}"));
    match state.content.lock().unwrap().blobs.get(digest) {
        Some(bytes) => reply(StatusCode::OK, bytes.clone()),
        None => reply(StatusCode::NOT_FOUND, ""),
    }
}
