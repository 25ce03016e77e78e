//! Service-account tokens for projected volumes: a TokenRequest bound to the pod, cached and
//! renewed once 80 % of its lifetime has passed or it is older than 24 h (the kubelet's token
//! manager).

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;

const MAX_AGE_SECONDS: i64 = 24 * 60 * 60;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    account: String,
    audience: String,
    expiration_seconds: i64,
    pod_uid: String,
}

struct Cached {
    token: String,
    issued: i64,
    expires: i64,
}

impl Cached {
    fn needs_refresh(&self, now: i64) -> bool {
        let lifetime = self.expires - self.issued;
        now >= self.issued + lifetime * 8 / 10 || now >= self.issued + MAX_AGE_SECONDS || now >= self.expires
    }
}

/// What a projected `serviceAccountToken` source asks for.
pub struct Wanted<'a> {
    pub namespace: &'a str,
    pub account: &'a str,
    pub pod_name: &'a str,
    pub pod_uid: &'a str,
    /// Empty: the API server's own audience.
    pub audience: &'a str,
    pub expiration_seconds: i64,
}

#[derive(Default)]
pub struct Tokens {
    cache: Mutex<HashMap<Key, Cached>>,
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Tokens {
    pub async fn get(&self, client: &kube::Client, wanted: &Wanted<'_>) -> Result<String, String> {
        let key = Key {
            namespace: wanted.namespace.to_owned(),
            account: wanted.account.to_owned(),
            audience: wanted.audience.to_owned(),
            expiration_seconds: wanted.expiration_seconds,
            pod_uid: wanted.pod_uid.to_owned(),
        };
        if let Some(cached) = self.cache.lock().expect("not poisoned").get(&key)
            && !cached.needs_refresh(now())
        {
            return Ok(cached.token.clone());
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: if wanted.audience.is_empty() {
                    Vec::new()
                } else {
                    vec![wanted.audience.to_owned()]
                },
                expiration_seconds: Some(wanted.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(wanted.pod_name.to_owned()),
                    uid: Some(wanted.pod_uid.to_owned()),
                }),
            },
            ..TokenRequest::default()
        };
        let issued = now();
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), wanted.namespace);
        let answer = api
            .create_token_request(wanted.account, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("failed to fetch token: {}", crate::volumes::api_message(&e)))?;
        let status = answer
            .status
            .ok_or_else(|| "failed to fetch token: the TokenRequest has no status".to_owned())?;
        let expires = status.expiration_timestamp.0.as_second();
        let mut cache = self.cache.lock().expect("not poisoned");
        cache.insert(
            key,
            Cached {
                token: status.token.clone(),
                issued,
                expires,
            },
        );
        Ok(status.token)
    }

    /// Forgets the tokens of a pod that is gone.
    pub fn forget_pod(&self, pod_uid: &str) {
        self.cache
            .lock()
            .expect("not poisoned")
            .retain(|k, _| k.pod_uid != pod_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_at_eighty_percent_or_a_day() {
        let hour = Cached {
            token: String::new(),
            issued: 0,
            expires: 3600,
        };
        assert!(!hour.needs_refresh(2879));
        assert!(hour.needs_refresh(2880));
        let year = Cached {
            token: String::new(),
            issued: 0,
            expires: 365 * 86400,
        };
        assert!(!year.needs_refresh(86399));
        assert!(year.needs_refresh(86400));
    }
}
