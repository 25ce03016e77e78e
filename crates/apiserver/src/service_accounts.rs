//! ServiceAccount tokens in the API: the `serviceaccounts/token` subresource (TokenRequest,
//! what `kubectl create token` and the kubelet call) and the authenticator that accepts the
//! tokens again, as upstream's `pkg/registry/core/serviceaccount/storage/token.go` and
//! `pkg/serviceaccount` do: a token is good while its signature, times and audience hold and
//! the ServiceAccount — and the Pod, Secret or Node it is bound to — still exist with the uids
//! it names.

use std::collections::BTreeMap;

use apimachinery::resources;
use apimachinery::status::{ApiError, Cause, GroupResource};
use serde_json::{Value, json};

use crate::objects::from_store;
use crate::pki::UserInfo;
use crate::request::ResourceRequest;
use crate::rest::{Rest, store_error};
use crate::sa_token::{self, ISSUER, Signer};

/// kubelet asks for this lifetime; such pod-bound tokens are extended to a year but carry
/// `warnafter` (`--service-account-extend-token-expiration`, on by default).
const WARN_ONLY_EXPIRATION_SECONDS: i64 = 3607;
const EXTENDED_EXPIRATION_SECONDS: i64 = 365 * 24 * 60 * 60;
/// A bound object deleted longer ago than this invalidates the token (upstream's grace).
const DELETED_GRACE_SECONDS: i64 = 60;

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn lookup(
    rest: &Rest,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let def = resources::find("", "v1", plural).expect("built in");
    match rest
        .store
        .get(&def.key(namespace, name))
        .await
        .map_err(store_error)?
    {
        Some(kv) => Ok(Some(from_store(&kv.value, kv.mod_revision)?)),
        None => Ok(None),
    }
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().unwrap_or_default().to_owned()
}

fn invalid(name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("authentication.k8s.io", "TokenRequest", name, causes)
}

/// `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`: the TokenRequest answered.
pub async fn token_request(
    rest: &Rest,
    signer: &Signer,
    req: &ResourceRequest,
    mut body: Value,
) -> Result<Value, ApiError> {
    let namespace = req.namespace.clone().unwrap_or_default();
    let name = req.name.clone().unwrap_or_default();
    if !body.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    if !body["metadata"].is_object() {
        body["metadata"] = json!({});
    }
    if !body["spec"].is_object() {
        body["spec"] = json!({});
    }
    let meta = &body["metadata"];
    if let Some(n) = meta["name"].as_str().filter(|n| !n.is_empty() && *n != name) {
        let cause = Cause::invalid(
            "metadata.name",
            &n.into(),
            "must match the service account name if specified",
        );
        return Err(invalid(&name, vec![cause]));
    }
    if let Some(n) = meta["namespace"]
        .as_str()
        .filter(|n| !n.is_empty() && *n != namespace)
    {
        let cause = Cause::invalid(
            "metadata.namespace",
            &n.into(),
            "must match the service account namespace if specified",
        );
        return Err(invalid(&name, vec![cause]));
    }
    // Defaults (SetDefaults_TokenRequestSpec), then validation (ValidateTokenRequest).
    let spec = &mut body["spec"];
    if spec["expirationSeconds"].is_null() {
        spec["expirationSeconds"] = 3600.into();
    }
    let expiration = spec["expirationSeconds"].as_i64().unwrap_or(0);
    if expiration < 600 {
        let cause = Cause::invalid(
            "spec.expirationSeconds",
            &expiration.into(),
            "may not specify a duration less than 10 minutes",
        );
        return Err(invalid("", vec![cause]));
    }
    if expiration > 1 << 32 {
        let cause = Cause::invalid(
            "spec.expirationSeconds",
            &expiration.into(),
            "may not specify a duration larger than 2^32 seconds",
        );
        return Err(invalid("", vec![cause]));
    }
    let account = lookup(rest, "serviceaccounts", Some(&namespace), &name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                GroupResource {
                    group: "",
                    resource: "serviceaccounts",
                },
                &name,
            )
        })?;
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    let audiences = if audiences.is_empty() {
        vec![ISSUER.to_owned()]
    } else {
        audiences
    };
    spec["audiences"] = json!(audiences);
    let mut bound = Vec::new();
    let mut bound_to_pod = false;
    if let Some(reference) = spec["boundObjectRef"].as_object() {
        let kind = reference.get("kind").and_then(Value::as_str).unwrap_or_default();
        let api_version = reference
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ref_name = reference.get("name").and_then(Value::as_str).unwrap_or_default();
        let ref_uid = reference.get("uid").and_then(Value::as_str).unwrap_or_default();
        let (group, _) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let (plural, key, ns) = match (group, kind) {
            ("", "Pod") => ("pods", "pod", Some(namespace.as_str())),
            ("", "Secret") => ("secrets", "secret", Some(namespace.as_str())),
            ("", "Node") => ("nodes", "node", None),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {api_version}, Kind={kind}"
                )));
            }
        };
        let object = lookup(rest, plural, ns, ref_name).await?.ok_or_else(|| {
            ApiError::not_found(
                GroupResource {
                    group: "",
                    resource: plural,
                },
                ref_name,
            )
        })?;
        if key == "pod" && object["spec"]["serviceAccountName"].as_str().unwrap_or_default() != name {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
            )));
        }
        let object_uid = uid(&object);
        if !ref_uid.is_empty() && ref_uid != object_uid {
            return Err(ApiError::conflict(
                GroupResource {
                    group,
                    resource: kind,
                },
                ref_name,
                &format!(
                    "the UID in the bound object reference ({ref_uid}) does not match the UID in record. \
                     The object might have been deleted and then recreated"
                ),
            ));
        }
        bound.push((key, ref_name.to_owned(), object_uid));
        if key == "pod" {
            bound_to_pod = true;
            // The node the pod runs on, as upstream's ServiceAccountTokenPodNodeInfo.
            if let Some(node) = object["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
                && let Some(node) = lookup(rest, "nodes", None, node).await?
            {
                let node_name = node["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                bound.push(("node", node_name, uid(&node)));
            }
        }
    }
    let now = now();
    let (lifetime, warn_after) = if bound_to_pod
        && expiration == WARN_ONLY_EXPIRATION_SECONDS
        && audiences.iter().any(|a| a == ISSUER)
    {
        (EXTENDED_EXPIRATION_SECONDS, Some(now + expiration))
    } else {
        (expiration, None)
    };
    let account_uid = uid(&account);
    let claims = sa_token::claims(&sa_token::Request {
        namespace: &namespace,
        account: (&name, &account_uid),
        bound,
        audiences: &audiences,
        now,
        expiration_seconds: lifetime,
        warn_after,
    });
    body["apiVersion"] = "authentication.k8s.io/v1".into();
    body["kind"] = "TokenRequest".into();
    let meta = &mut body["metadata"];
    if meta["name"].as_str().is_none_or(str::is_empty) {
        meta["name"] = name.clone().into();
    }
    if meta["namespace"].as_str().is_none_or(str::is_empty) {
        meta["namespace"] = namespace.clone().into();
    }
    meta["creationTimestamp"] = Value::Null;
    body["status"] = json!({
        "token": signer.sign(&claims),
        "expirationTimestamp": rfc3339(now + expiration),
    });
    Ok(body)
}

/// The user a service-account bearer token stands for: `None` if the token is not one of ours
/// (another authenticator may know it), `Some(Err(reason))` if it is ours but no longer valid.
/// `audiences` (a TokenReview's spec.audiences) must intersect the token's; empty means the API
/// server's own.
pub async fn authenticate(
    rest: &Rest,
    signer: &Signer,
    token: &str,
    audiences: &[String],
) -> Option<Result<(UserInfo, Vec<String>), String>> {
    let verified = match signer.verify(token, now())? {
        Ok(v) => v,
        Err(reason) => return Some(Err(reason)),
    };
    Some(check_live(rest, verified, audiences).await)
}

async fn check_live(
    rest: &Rest,
    v: sa_token::Verified,
    audiences: &[String],
) -> Result<(UserInfo, Vec<String>), String> {
    let wanted: Vec<String> = if audiences.is_empty() {
        vec![ISSUER.to_owned()]
    } else {
        audiences.to_vec()
    };
    let matched: Vec<String> = wanted
        .iter()
        .filter(|a| v.audiences.contains(a))
        .cloned()
        .collect();
    if matched.is_empty() {
        return Err(format!(
            "token audiences {:?} is invalid for the target audiences {:?}",
            v.audiences, wanted
        ));
    }
    let deleted_long_ago = |obj: &Value| {
        obj["metadata"]["deletionTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| t.as_second() < now() - DELETED_GRACE_SECONDS)
    };
    let internal = |e: ApiError| e.message;
    let (ns, name) = (v.namespace.as_str(), v.name.as_str());
    // upstream's validator, check for check and word for word (pkg/serviceaccount/claims.go).
    let account = lookup(rest, "serviceaccounts", Some(ns), name)
        .await
        .map_err(internal)?
        .ok_or_else(|| format!("serviceaccount {name:?} not found"))?;
    if uid(&account) != v.uid {
        return Err(format!(
            "service account UID ({}) does not match claim ({})",
            uid(&account),
            v.uid
        ));
    }
    if deleted_long_ago(&account) {
        return Err(format!("service account {ns}/{name} has been deleted"));
    }
    const INVALIDATED: &str = "service account token has been invalidated";
    let mut extra = BTreeMap::new();
    let pod_bound = v.bound.iter().any(|(k, ..)| *k == "Pod");
    for (kind, bound_name, bound_uid) in &v.bound {
        let (plural, namespace, lower) = match *kind {
            "Pod" => ("pods", Some(ns), "pod"),
            "Secret" => ("secrets", Some(ns), "secret"),
            _ => ("nodes", None, "node"),
        };
        // A pod-bound token's node claim is information only.
        if *kind != "Node" || !pod_bound {
            let object = lookup(rest, plural, namespace, bound_name)
                .await
                .map_err(internal)?
                .ok_or_else(|| INVALIDATED.to_owned())?;
            if &uid(&object) != bound_uid {
                return Err(format!(
                    "{lower} UID ({}) does not match service account {lower} ref claim ({bound_uid})",
                    uid(&object)
                ));
            }
            if deleted_long_ago(&object) {
                return Err(INVALIDATED.to_owned());
            }
        }
        if *kind != "Secret" {
            let key = |what: &str| format!("authentication.kubernetes.io/{lower}-{what}");
            extra.insert(key("name"), vec![bound_name.clone()]);
            extra.insert(key("uid"), vec![bound_uid.clone()]);
        }
    }
    if let Some(jti) = &v.jti {
        extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={jti}")],
        );
    }
    let user = UserInfo {
        name: format!("system:serviceaccount:{ns}:{name}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
        uid: Some(v.uid.clone()),
        extra,
    };
    Ok((user, matched))
}
