//! Service-account tokens as JWTs: the signing key the server keeps in its PKI directory
//! (`service-account.key`, ECDSA P-256, so tokens are ES256), the claims upstream's
//! `pkg/serviceaccount` writes, signing, and the signature / time / audience checks of the
//! authenticator (the existence checks against the store are `service_accounts`' business).
//! Also the OIDC discovery documents (`/.well-known/openid-configuration`, `/openid/v1/jwks`).

use std::path::Path;

use anyhow::{Context as _, anyhow};
use base64::Engine as _;
use rcgen::{KeyPair, PublicKeyData as _};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
use serde_json::{Value, json};

/// The issuer (`--service-account-issuer`) rkube uses, as upstream's default in kubeadm/k3s.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Clock skew tolerated on `exp` / `nbf` (go-jose's `DefaultLeeway`).
const LEEWAY_SECONDS: i64 = 60;
/// The key file in the PKI directory.
pub const KEY_FILE: &str = "service-account.key";

/// The server's token signer and verifier.
pub struct Signer {
    key: EcdsaKeyPair,
    /// The uncompressed public point (65 bytes), for verification and the JWKS.
    public: Vec<u8>,
    kid: String,
    rng: SystemRandom,
    /// Where `/openid/v1/jwks` is served (for the discovery document).
    pub jwks_uri: String,
}

/// What the authenticator accepts of a verified token; the store checks come after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Bound objects `(kind, name, uid)`: Pod, Secret, Node.
    pub bound: Vec<(&'static str, String, String)>,
    pub audiences: Vec<String>,
    pub jti: Option<String>,
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}

impl Signer {
    /// Loads `service-account.key` from `dir`, creating it on first start.
    pub fn load_or_create(dir: &Path, jwks_uri: String) -> anyhow::Result<Signer> {
        let path = dir.join(KEY_FILE);
        let pair = if path.exists() {
            crate::pki::read_key(&path)?
        } else {
            let pair = KeyPair::generate().context("generating the service-account key")?;
            crate::pki::write_atomic(&path, pair.serialize_pem().as_bytes(), 0o600)?;
            pair
        };
        Signer::from_key_pair(&pair, jwks_uri).with_context(|| format!("{}", path.display()))
    }

    fn from_key_pair(pair: &KeyPair, jwks_uri: String) -> anyhow::Result<Signer> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pair.serialize_der(), &rng)
            .map_err(|e| anyhow!("not an ECDSA P-256 key: {e}"))?;
        let public = ring::signature::KeyPair::public_key(&key).as_ref().to_vec();
        // Upstream's key id: the SHA-256 of the DER public key (SubjectPublicKeyInfo), base64url.
        let kid = b64(ring::digest::digest(&ring::digest::SHA256, &pair.subject_public_key_info()).as_ref());
        Ok(Signer {
            key,
            public,
            kid,
            rng,
            jwks_uri,
        })
    }

    /// A signed JWT of `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self
            .key
            .sign(&self.rng, input.as_bytes())
            .expect("ECDSA signing does not fail with a valid key");
        format!("{input}.{}", b64(signature.as_ref()))
    }

    /// The claims of `token` if it is a JWT we signed; `None` if it is not ours at all (another
    /// authenticator may know it), `Some(Err)` with the reason it is invalid otherwise.
    pub fn verify(&self, token: &str, now: i64) -> Option<Result<Verified, String>> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let header: Value = serde_json::from_slice(&unb64(header)?).ok()?;
        let claims: Value = serde_json::from_slice(&unb64(payload)?).ok()?;
        if claims["iss"] != ISSUER {
            return None;
        }
        if header["alg"] != "ES256" {
            return Some(Err(format!("unexpected signing algorithm {}", header["alg"])));
        }
        let signed = &token[..header_len(token)];
        let ok = unb64(signature).is_some_and(|sig| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
                .verify(signed.as_bytes(), &sig)
                .is_ok()
        });
        if !ok {
            return Some(Err("invalid signature".into()));
        }
        Some(check_claims(&claims, now))
    }

    /// `/openid/v1/jwks`.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": "ES256",
            "x": b64(&self.public[1..33]),
            "y": b64(&self.public[33..65]),
        }]})
    }

    /// `/.well-known/openid-configuration`.
    pub fn openid_configuration(&self) -> Value {
        json!({
            "issuer": ISSUER,
            "jwks_uri": self.jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }
}

/// The length of `header.payload`, the signed part.
fn header_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

fn check_claims(claims: &Value, now: i64) -> Result<Verified, String> {
    let k8s = &claims["kubernetes.io"];
    let namespace = k8s["namespace"].as_str().unwrap_or_default();
    let name = k8s["serviceaccount"]["name"].as_str().unwrap_or_default();
    let uid = k8s["serviceaccount"]["uid"].as_str().unwrap_or_default();
    if namespace.is_empty() || name.is_empty() || uid.is_empty() {
        return Err("service account token claims are missing the namespace, name or uid".into());
    }
    if claims["exp"]
        .as_i64()
        .is_some_and(|exp| now > exp + LEEWAY_SECONDS)
    {
        return Err("service account token has expired".into());
    }
    if claims["nbf"]
        .as_i64()
        .is_some_and(|nbf| now + LEEWAY_SECONDS < nbf)
    {
        return Err("service account token is not valid yet".into());
    }
    if claims["iat"]
        .as_i64()
        .is_some_and(|iat| now + LEEWAY_SECONDS < iat)
    {
        return Err("service account token issued in the future".into());
    }
    let audiences: Vec<String> = match &claims["aud"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    let bound = [("Pod", "pod"), ("Secret", "secret"), ("Node", "node")]
        .into_iter()
        .filter_map(|(kind, key)| {
            let r = &k8s[key];
            Some((
                kind,
                r["name"].as_str()?.to_owned(),
                r["uid"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    Ok(Verified {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        bound,
        audiences,
        jti: claims["jti"].as_str().map(str::to_owned),
    })
}

/// What a token is issued for.
pub struct Request<'a> {
    pub namespace: &'a str,
    pub account: (&'a str, &'a str),
    /// `(kind key, name, uid)`: `pod`, `secret` or `node`; the node a bound pod runs on is
    /// added as upstream does.
    pub bound: Vec<(&'static str, String, String)>,
    pub audiences: &'a [String],
    pub now: i64,
    pub expiration_seconds: i64,
    /// kubelet's tokens (3607 s) live a year but warn after their nominal lifetime.
    pub warn_after: Option<i64>,
}

/// The claims upstream's `serviceaccount.Claims` writes (go-jose orders keys, as here).
pub fn claims(req: &Request<'_>) -> Value {
    let (name, uid) = req.account;
    let mut k8s = json!({
        "namespace": req.namespace,
        "serviceaccount": {"name": name, "uid": uid},
    });
    for (key, name, uid) in &req.bound {
        k8s[*key] = json!({"name": name, "uid": uid});
    }
    if let Some(warn) = req.warn_after {
        k8s["warnafter"] = warn.into();
    }
    json!({
        "aud": req.audiences,
        "exp": req.now + req.expiration_seconds,
        "iat": req.now,
        "iss": ISSUER,
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": k8s,
        "nbf": req.now,
        "sub": format!("system:serviceaccount:{}:{name}", req.namespace),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::from_key_pair(&KeyPair::generate().unwrap(), "https://x/openid/v1/jwks".into()).unwrap()
    }

    fn request(now: i64) -> Request<'static> {
        Request {
            namespace: "ns",
            account: ("default", "sa-uid"),
            bound: vec![("pod", "p".into(), "pod-uid".into())],
            audiences: &[],
            now,
            expiration_seconds: 3600,
            warn_after: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_with_its_claims() {
        let signer = signer();
        let token = signer.sign(&claims(&request(1000)));
        let verified = signer.verify(&token, 1000).unwrap().unwrap();
        assert_eq!(
            (verified.namespace.as_str(), verified.name.as_str()),
            ("ns", "default")
        );
        assert_eq!(verified.uid, "sa-uid");
        assert_eq!(
            verified.bound,
            vec![("Pod", "p".to_owned(), "pod-uid".to_owned())]
        );
        let payload: Value =
            serde_json::from_slice(&unb64(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(payload["sub"], "system:serviceaccount:ns:default");
        assert_eq!(payload["exp"], 4600);
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let signer = signer();
        let token = signer.sign(&claims(&request(1000)));
        assert_eq!(
            signer.verify(&token, 1000 + 3600 + 61).unwrap(),
            Err("service account token has expired".into())
        );
        assert!(signer.verify(&token, 1000 + 3600 + 59).unwrap().is_ok());
        let other = signer.sign(&claims(&request(1000)));
        let forged = format!(
            "{}.{}",
            &token[..header_len(&token)],
            other.rsplit('.').next().unwrap()
        );
        assert_eq!(
            signer.verify(&forged, 1000).unwrap(),
            Err("invalid signature".into())
        );
        let by_another_key = super::tests::signer().sign(&claims(&request(1000)));
        assert_eq!(
            signer.verify(&by_another_key, 1000).unwrap(),
            Err("invalid signature".into())
        );
        assert!(signer.verify("static-token", 1000).is_none());
        assert!(signer.verify("a.b.c", 1000).is_none());
    }

    #[test]
    fn jwks_publishes_the_point() {
        let signer = signer();
        let jwks = signer.jwks();
        assert_eq!(unb64(jwks["keys"][0]["x"].as_str().unwrap()).unwrap().len(), 32);
        assert_eq!(jwks["keys"][0]["kid"].as_str().unwrap().len(), 43);
        assert_eq!(signer.openid_configuration()["issuer"], ISSUER);
    }
}
