//! Registry authentication as the Docker distribution spec defines it: a `401` carries
//! `WWW-Authenticate` challenges; `Basic` is answered with the credentials, `Bearer
//! realm=…,service=…,scope=…` by fetching a token from the realm (anonymously, with basic
//! credentials, or with an identity token through the OAuth2 refresh-token grant) and retrying
//! with `Authorization: Bearer <token>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;
use hyper::body::Bytes;

use super::client::{Http, read_body, send, unexpected_status};
use super::{Failure, PullErrorKind};

/// What a registry is told: a user and password, or an identity (refresh) token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub identity_token: String,
}

impl Credentials {
    pub fn basic(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
            identity_token: String::new(),
        }
    }

    /// Docker's `auth` field: base64 of `user:password`.
    pub fn from_auth_field(auth: &str) -> Result<Credentials, String> {
        let decoded = BASE64
            .decode(auth.trim())
            .map_err(|e| format!("auth field is not base64: {e}"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| "auth field is not UTF-8".to_owned())?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| "auth field is not base64 of user:password".to_owned())?;
        Ok(Credentials::basic(user, password.trim_matches('\0')))
    }

    fn basic_header(&self) -> Option<String> {
        (!self.username.is_empty() && !self.password.is_empty()).then(|| {
            format!(
                "Basic {}",
                BASE64.encode(format!("{}:{}", self.username, self.password))
            )
        })
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lower-cased: `basic`, `bearer`.
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `WWW-Authenticate` values (RFC 7235: several challenges, quoted-string parameters).
pub(crate) fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut challenges = Vec::new();
    for value in values {
        let mut rest = value.trim();
        let mut current: Option<Challenge> = None;
        while !rest.is_empty() {
            rest = rest.trim_start_matches([' ', ',']);
            let token_end = rest.find(['=', ' ', ',']).unwrap_or(rest.len());
            let token = &rest[..token_end];
            let after = rest[token_end..].trim_start_matches(' ');
            if let Some(value_part) = after.strip_prefix('=') {
                // A parameter of the current challenge.
                let value_part = value_part.trim_start();
                let (param, remaining) = if let Some(quoted) = value_part.strip_prefix('"') {
                    let mut out = String::new();
                    let mut chars = quoted.char_indices();
                    let mut end = quoted.len();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, escaped)) = chars.next() {
                                    out.push(escaped);
                                }
                            }
                            '"' => {
                                end = i + 1;
                                break;
                            }
                            c => out.push(c),
                        }
                    }
                    (out, &quoted[end.min(quoted.len())..])
                } else {
                    let end = value_part.find(',').unwrap_or(value_part.len());
                    (value_part[..end].trim().to_owned(), &value_part[end..])
                };
                if let Some(challenge) = current.as_mut() {
                    challenge.params.push((token.to_owned(), param));
                }
                rest = remaining;
            } else if token.is_empty() {
                break;
            } else {
                // A new scheme.
                challenges.extend(current.take());
                current = Some(Challenge {
                    scheme: token.to_ascii_lowercase(),
                    params: Vec::new(),
                });
                rest = after;
            }
        }
        challenges.extend(current);
    }
    challenges
}

/// The authorization one endpoint uses during one pull.
#[derive(Clone)]
pub(crate) struct Authorizer {
    credentials: Option<Credentials>,
    /// The `Authorization` value requests carry, once a challenge was answered.
    header: Option<String>,
}

impl Authorizer {
    pub fn new(credentials: Option<Credentials>) -> Authorizer {
        Authorizer {
            credentials,
            header: None,
        }
    }

    pub fn header(&self) -> Option<&str> {
        self.header.as_deref()
    }

    /// Answers a 401's challenges for `repository`; true when the request is worth retrying.
    pub async fn answer(
        &mut self,
        http: &Http,
        challenges: &[Challenge],
        repository: &str,
    ) -> Result<bool, Failure> {
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let token = self.fetch_token(http, bearer, repository).await?;
            self.header = Some(format!("Bearer {token}"));
            return Ok(true);
        }
        if challenges.iter().any(|c| c.scheme == "basic")
            && let Some(header) = self.credentials.as_ref().and_then(Credentials::basic_header)
        {
            self.header = Some(header);
            return Ok(true);
        }
        Ok(false)
    }

    async fn fetch_token(
        &self,
        http: &Http,
        challenge: &Challenge,
        repository: &str,
    ) -> Result<String, Failure> {
        let realm = challenge.param("realm").unwrap_or_default();
        let what = match &self.credentials {
            Some(_) => "failed to fetch oauth token",
            None => "failed to fetch anonymous token",
        };
        let fail = |kind: PullErrorKind, message: String| Failure {
            kind,
            message: format!("failed to authorize: {what}: {message}"),
        };
        if !realm.starts_with("http://") && !realm.starts_with("https://") {
            return Err(fail(
                PullErrorKind::Unauthorized,
                format!("invalid token realm {realm:?}"),
            ));
        }
        let mut scopes = vec![format!("repository:{repository}:pull")];
        if let Some(scope) = challenge.param("scope") {
            scopes.extend(scope.split(' ').filter(|s| !s.is_empty()).map(str::to_owned));
        }
        scopes.dedup();
        let service = challenge.param("service").unwrap_or_default();
        let credentials = self.credentials.clone().unwrap_or_default();
        let request = if !credentials.identity_token.is_empty() {
            // OAuth2 refresh-token grant (what `docker login` identity tokens are).
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", &credentials.identity_token)
                .append_pair("service", service)
                .append_pair("client_id", "rkube")
                .append_pair("scope", &scopes.join(" "));
            Request::builder()
                .method(Method::POST)
                .uri(realm)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(form.finish())))
        } else {
            let mut query = form_urlencoded::Serializer::new(String::new());
            if !service.is_empty() {
                query.append_pair("service", service);
            }
            for scope in &scopes {
                query.append_pair("scope", scope);
            }
            if !credentials.username.is_empty() {
                query.append_pair("account", &credentials.username);
            }
            let separator = if realm.contains('?') { '&' } else { '?' };
            let mut builder = Request::builder()
                .method(Method::GET)
                .uri(format!("{realm}{separator}{}", query.finish()));
            if let Some(basic) = credentials.basic_header() {
                builder = builder.header(header::AUTHORIZATION, basic);
            }
            builder.body(Full::new(Bytes::new()))
        };
        let request =
            request.map_err(|e| fail(PullErrorKind::Unauthorized, format!("invalid token request: {e}")))?;
        let method = request.method().clone();
        let url = request.uri().to_string();
        let response = send(http, request).await.map_err(|f| fail(f.kind, f.message))?;
        let status = response.status();
        if status != StatusCode::OK {
            let kind = if status.is_server_error() {
                PullErrorKind::Unavailable
            } else {
                PullErrorKind::Unauthorized
            };
            return Err(fail(kind, unexpected_status(&method, &url, status)));
        }
        let body = read_body(response, 1 << 20)
            .await
            .map_err(|f| fail(f.kind, f.message))?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            fail(
                PullErrorKind::Unauthorized,
                format!("unable to decode token response: {e}"),
            )
        })?;
        let token = if parsed.access_token.is_empty() {
            parsed.token
        } else {
            parsed.access_token
        };
        if token.is_empty() {
            return Err(fail(
                PullErrorKind::Unauthorized,
                "authorization server did not include a token in the response".into(),
            ));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_as_rfc_7235() {
        let parsed = parse_challenges([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
            r#"Basic realm="a \"quoted\" realm", Bearer realm=https://x/t,error=insufficient_scope"#,
        ]);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].scheme, "bearer");
        assert_eq!(parsed[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(parsed[0].param("scope"), Some("repository:library/busybox:pull"));
        assert_eq!(parsed[1].scheme, "basic");
        assert_eq!(parsed[1].param("realm"), Some(r#"a "quoted" realm"#));
        assert_eq!(parsed[2].param("realm"), Some("https://x/t"));
        assert_eq!(parsed[2].param("error"), Some("insufficient_scope"));
        assert!(parse_challenges([""]).is_empty());
    }

    #[test]
    fn auth_fields_decode_to_user_and_password() {
        let encoded = BASE64.encode("me:se:cret");
        assert_eq!(
            Credentials::from_auth_field(&encoded).unwrap(),
            Credentials::basic("me", "se:cret")
        );
        assert!(Credentials::from_auth_field("!!").is_err());
        assert!(Credentials::from_auth_field(&BASE64.encode("nocolon")).is_err());
    }
}
