//! Authentication: x509 client certificates (verified by TLS, see `pki`) and static bearer
//! tokens from a token file in upstream's `--token-auth-file` format, one per line:
//! `token,user,uid,"group1,group2"` (groups optional; `#` starts a comment line).
//!
//! Nodes join as k3s agents do ([`NodeJoin`]): the join token `K10<ca-hash>::server:<secret>`
//! lets an agent fetch the CA from `/cacerts` (public) and check it against the hash, then buy
//! a client certificate for `system:node:<name>` in `system:nodes` from
//! `/v1-rkube/client-kubelet.crt` with the token as its Basic password (user `node`); from then
//! on it is an ordinary x509 client.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use apimachinery::status::ApiError;
use base64::Engine as _;

use crate::pki::{Pki, UserInfo};

/// Where joining nodes read the cluster CA (unauthenticated, as k3s's `/cacerts`).
pub const CA_CERTS_PATH: &str = "/cacerts";
/// Where joining nodes get their client certificate (k3s: `/v1-k3s/client-kubelet.crt`).
pub const NODE_CERT_PATH: &str = "/v1-rkube/client-kubelet.crt";
/// The header naming the node a certificate is asked for (k3s: `k3s-Node-Name`).
pub const NODE_NAME_HEADER: &str = "rkube-node-name";
/// The Basic-auth user name a joining node sends with the token as password (as k3s agents).
pub const NODE_JOIN_USER: &str = "node";

/// Issues node client certificates to holders of the join token.
pub struct NodeJoin {
    token: String,
    pki: Arc<Pki>,
}

impl NodeJoin {
    pub fn new(token: String, pki: Arc<Pki>) -> NodeJoin {
        NodeJoin { token, pki }
    }

    pub fn ca_cert_pem(&self) -> &str {
        self.pki.ca_cert_pem()
    }

    /// The PEM certificate and key of `system:node:<name>` for a request carrying the join token
    /// (`Authorization: Basic node:<token>`, the full token or only its secret part, as k3s
    /// accepts both) and the node's name.
    pub fn node_certificate(
        &self,
        authorization: Option<&str>,
        node_name: Option<&str>,
    ) -> Result<String, ApiError> {
        let password = authorization
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|creds| Some(creds.split_once(':')?.1.to_owned()));
        if !password.is_some_and(|p| self.admits(&p)) {
            return Err(ApiError::unauthorized());
        }
        let name = node_name.unwrap_or("").trim();
        if !crate::pki::is_dns_name(name)
            || name.starts_with("*.")
            || name.chars().any(|c| c.is_ascii_uppercase())
        {
            return Err(ApiError::bad_request(format!(
                "invalid node name {name:?} in the {NODE_NAME_HEADER} header: must be a lowercase RFC 1123 subdomain"
            )));
        }
        let issued = self
            .pki
            .issue_client_cert(&format!("system:node:{name}"), Some("system:nodes"))
            .map_err(|e| ApiError::internal(format!("issuing the node certificate: {e:#}")))?;
        Ok(format!("{}{}", issued.cert_pem, issued.key_pem))
    }

    /// The full token or its secret part, compared in constant time.
    fn admits(&self, password: &str) -> bool {
        let secret = self
            .token
            .rsplit_once("::server:")
            .map_or(self.token.as_str(), |(_, s)| s);
        [self.token.as_str(), secret]
            .iter()
            .any(|want| constant_time_eq(want.as_bytes(), password.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Static bearer tokens and whom they stand for.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    users: HashMap<String, UserInfo>,
}

impl Tokens {
    pub fn load(path: &Path) -> anyhow::Result<Tokens> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read token file {}", path.display()))?;
        Tokens::parse(&text).with_context(|| format!("token file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Tokens> {
        let mut users = HashMap::new();
        for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line).with_context(|| format!("line {number}"))?;
            if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
                bail!("line {number}: expected token,user,uid[,\"groups\"]");
            }
            let groups = match fields.get(3) {
                Some(g) if !g.is_empty() => g
                    .split(',')
                    .map(|g| g.trim().to_owned())
                    .filter(|g| !g.is_empty())
                    .collect(),
                _ => Vec::new(),
            };
            if users
                .insert(
                    fields[0].clone(),
                    UserInfo {
                        name: fields[1].clone(),
                        groups,
                        uid: Some(fields[2].clone()).filter(|u| !u.is_empty()),
                        extra: Default::default(),
                    },
                )
                .is_some()
            {
                bail!("line {number}: duplicate token");
            }
        }
        Ok(Tokens { users })
    }

    /// The user a request's `Authorization: Bearer <token>` header names, if the token is known.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<&UserInfo> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.users.get(token)
    }
}

/// Splits one CSV line (fields may be double-quoted, `""` is a quote inside quotes).
fn split_csv(line: &str) -> anyhow::Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if field.is_empty() => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        bail!("unterminated quote");
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_token_files() {
        let tokens = Tokens::parse("# comment\nsecret1,alice,1\nsecret2,bob,2,\"dev,ops\"\n").unwrap();
        let alice = tokens.authenticate(Some("Bearer secret1")).unwrap();
        assert_eq!((alice.name.as_str(), alice.groups.len()), ("alice", 0));
        let bob = tokens.authenticate(Some("Bearer secret2")).unwrap();
        assert_eq!(bob.groups, ["dev", "ops"]);
        assert!(tokens.authenticate(Some("Bearer nope")).is_none());
        assert!(tokens.authenticate(Some("Basic c2VjcmV0MQ==")).is_none());
        assert!(tokens.authenticate(None).is_none());
    }

    #[test]
    fn node_certificates_for_the_join_token_only() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Arc::new(Pki::load_or_create(dir.path(), &Default::default()).unwrap());
        let token = "K10abc::server:s3cret".to_owned();
        let join = NodeJoin::new(token.clone(), pki);
        let basic = |password: &str| {
            let creds = base64::engine::general_purpose::STANDARD.encode(format!("node:{password}"));
            format!("Basic {creds}")
        };
        for password in [token.as_str(), "s3cret"] {
            let pem = join
                .node_certificate(Some(&basic(password)), Some("worker-1"))
                .unwrap();
            assert!(pem.contains("BEGIN CERTIFICATE") && pem.contains("BEGIN PRIVATE KEY"));
        }
        for refused in [
            Some(basic("wrong")),
            Some(basic("s3cre")),
            Some("Bearer s3cret".into()),
            None,
        ] {
            let err = join
                .node_certificate(refused.as_deref(), Some("worker-1"))
                .unwrap_err();
            assert_eq!(err.code, 401);
        }
        let err = join
            .node_certificate(Some(&basic("s3cret")), Some("Bad_Name!"))
            .unwrap_err();
        assert_eq!(err.code, 400);
        assert!(join.node_certificate(Some(&basic("s3cret")), None).is_err());
    }

    #[test]
    fn refuses_malformed_files() {
        assert!(Tokens::parse("justatoken\n").is_err());
        assert!(Tokens::parse("a,b,1\na,c,2\n").is_err());
        assert!(Tokens::parse("a,b,1,\"unterminated\n").is_err());
    }
}
