//! The admission plugins upstream enables by default that change or refuse new objects:
//! NamespaceLifecycle (no content in missing or terminating namespaces, system namespaces stay),
//! for pods ServiceAccount (the `default` service account and its token volume), Priority (priority and preemption
//! policy from the pod's PriorityClass, or the global default) and DefaultTolerationSeconds
//! (tolerate not-ready and unreachable nodes for 300 s) and LimitRanger (`limit_ranger`),
//! DefaultStorageClass for claims and
//! DefaultIngressClass for ingresses. Pod templates inside workloads do not get the pod plugins'
//! changes; their pods do when the controllers create them.

mod limit_ranger;
pub mod webhook;

use apimachinery::resources::{self, ResourceDef};
use apimachinery::status::{ApiError, GroupResource};
use serde_json::{Value, json};
use store::{KeyRange, RangeRequest, Store};

use crate::objects::{self, from_store};
use crate::rest::store_error;

/// The built-in classes kube-apiserver creates at start (its scheduling post-start hook).
pub const SYSTEM_PRIORITY_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// Namespaces that cannot be deleted (upstream's NamespaceLifecycle keeps them).
const IMMORTAL_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// Mutates and admits a new object: its namespace must exist and not be terminating
/// (NamespaceLifecycle); pods get the pod plugins' changes.
pub async fn admit_create(store: &dyn Store, def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    if def.namespaced
        && let Some(namespace) = objects::namespace(obj)
    {
        namespace_lifecycle(store, def, objects::name(obj).unwrap_or_default(), namespace).await?;
    }
    match (def.group, def.plural) {
        ("", "pods") => {}
        ("", "persistentvolumeclaims") => return default_storage_class(store, obj).await,
        ("networking.k8s.io", "ingresses") => return default_ingress_class(store, obj).await,
        _ => return Ok(()),
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        spec.insert("serviceAccountName".into(), "default".into());
        spec.insert("serviceAccount".into(), "default".into());
    }
    default_tolerations(spec);
    service_account_token(store, obj).await?;
    priority(store, obj).await?;
    limit_ranges(store, obj).await
}

/// Where containers find their service account's token, CA and namespace.
const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ServiceAccount plugin: the pod's service account must exist (upstream's Forbidden
/// `error looking up service account ns/name: serviceaccount "name" not found`; the `default`
/// account is retried for up to about 1.5 s, as upstream does, since its controller creates it
/// just after the namespace); the pod takes the account's imagePullSecrets when it names none;
/// and unless the account or the pod opts out, a projected `kube-api-access-…` volume (bound
/// token, the cluster CA from `kube-root-ca.crt`, the namespace) is mounted read-only in every
/// container. Mirror pods (static pods) are left alone.
async fn service_account_token(store: &dyn Store, pod: &mut Value) -> Result<(), ApiError> {
    if pod["metadata"]["annotations"]
        .get(MIRROR_POD_ANNOTATION)
        .is_some()
    {
        return Ok(());
    }
    let name = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let account = service_account(store, objects::namespace(pod), &name)
        .await?
        .ok_or_else(|| {
            let namespace = objects::namespace(pod).unwrap_or_default();
            forbidden(
                pod,
                &format!(
                    "error looking up service account {namespace}/{name}: serviceaccount {name:?} not found"
                ),
            )
        })?;
    let pull_secrets = pod["spec"]["imagePullSecrets"]
        .as_array()
        .is_some_and(|s| !s.is_empty());
    if !pull_secrets && let Some(secrets) = account["imagePullSecrets"].as_array().filter(|s| !s.is_empty()) {
        pod["spec"]["imagePullSecrets"] = Value::Array(secrets.clone());
    }
    let automount = pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    if !automount {
        return Ok(());
    }
    let volume = format!("kube-api-access-{}", random_suffix());
    let mut mounted = false;
    for key in ["initContainers", "containers"] {
        for c in pod["spec"][key].as_array_mut().into_iter().flatten() {
            if !c.is_object() {
                continue;
            }
            let mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
            if mounts.iter().any(|m| m["mountPath"] == TOKEN_MOUNT_PATH) {
                continue;
            }
            let mut mounts = mounts;
            mounts.push(json!({"name": volume, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}));
            c["volumeMounts"] = Value::Array(mounts);
            mounted = true;
        }
    }
    if mounted {
        let projected = json!({"name": volume, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}});
        match pod["spec"]["volumes"].as_array_mut() {
            Some(volumes) => volumes.push(projected),
            None => pod["spec"]["volumes"] = json!([projected]),
        }
    }
    Ok(())
}

/// Static pods' mirror objects carry this; upstream's plugins do not touch them.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The service account `namespace/name`, or None when it does not exist. The `default` account
/// is looked for 10 times, 100–200 ms apart, as upstream's plugin does.
async fn service_account(
    store: &dyn Store,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let def = resources::find("", "v1", "serviceaccounts").expect("built in");
    let key = def.key(namespace, name);
    let attempts = if name == "default" { 10 } else { 1 };
    let pause = std::time::Duration::from_millis(100 + u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 100);
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(pause).await;
        }
        if let Some(kv) = store.get(&key).await.map_err(store_error)? {
            return from_store(&kv.value, kv.mod_revision).map(Some);
        }
    }
    Ok(None)
}

/// Five characters of upstream's generateName alphabet.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().into_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// LimitRanger, with the LimitRanges of the pod's namespace.
async fn limit_ranges(store: &dyn Store, pod: &mut Value) -> Result<(), ApiError> {
    let def = resources::find("", "v1", "limitranges").expect("built in");
    let prefix = def.key_prefix(objects::namespace(pod));
    let resp = store
        .range(RangeRequest::new(KeyRange::prefix(&prefix)))
        .await
        .map_err(store_error)?;
    if resp.kvs.is_empty() {
        return Ok(());
    }
    let ranges = resp
        .kvs
        .iter()
        .map(|kv| from_store(&kv.value, kv.mod_revision))
        .collect::<Result<Vec<_>, _>>()?;
    match limit_ranger::admit(pod, &ranges).as_slice() {
        [] => Ok(()),
        [one] => Err(forbidden(pod, one)),
        many => Err(forbidden(pod, &format!("[{}]", many.join(", ")))),
    }
}

async fn namespace_lifecycle(
    store: &dyn Store,
    def: &ResourceDef,
    name: &str,
    namespace: &str,
) -> Result<(), ApiError> {
    let namespaces = resources::find("", "v1", "namespaces").expect("built in");
    let Some(kv) = store
        .get(&namespaces.key(None, namespace))
        .await
        .map_err(store_error)?
    else {
        return Err(ApiError::not_found(namespaces.group_resource(), namespace));
    };
    let ns = from_store(&kv.value, kv.mod_revision)?;
    if ns["status"]["phase"] == "Terminating" || objects::meta_str(&ns, "deletionTimestamp").is_some() {
        return Err(ApiError::forbidden(format!(
            "{} {name:?} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
            def.group_resource()
        )));
    }
    Ok(())
}

/// DefaultStorageClass: a claim that names no class gets the default one.
async fn default_storage_class(store: &dyn Store, claim: &mut Value) -> Result<(), ApiError> {
    let has_class = !claim["spec"]["storageClassName"].is_null()
        || !claim["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"].is_null();
    if has_class || !claim["spec"].is_object() {
        return Ok(());
    }
    let annotations = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ];
    if let Some(name) = newest_default(store, "storage.k8s.io", "storageclasses", &annotations).await? {
        claim["spec"]["storageClassName"] = name.into();
    }
    Ok(())
}

/// DefaultIngressClass: an ingress that names no class gets the default one.
async fn default_ingress_class(store: &dyn Store, ingress: &mut Value) -> Result<(), ApiError> {
    let has_class = !ingress["spec"]["ingressClassName"].is_null()
        || !ingress["metadata"]["annotations"]["kubernetes.io/ingress.class"].is_null();
    if has_class || !ingress["spec"].is_object() {
        return Ok(());
    }
    let annotations = ["ingressclass.kubernetes.io/is-default-class"];
    if let Some(name) = newest_default(store, "networking.k8s.io", "ingressclasses", &annotations).await? {
        ingress["spec"]["ingressClassName"] = name.into();
    }
    Ok(())
}

/// The name of the newest class annotated as the default (upstream picks the most recently
/// created one when several are).
async fn newest_default(
    store: &dyn Store,
    group: &str,
    plural: &str,
    annotations: &[&str],
) -> Result<Option<String>, ApiError> {
    let def = resources::find(group, "v1", plural).expect("built in");
    let resp = store
        .range(RangeRequest::new(KeyRange::prefix(&def.key_prefix(None))))
        .await
        .map_err(store_error)?;
    let mut best: Option<(String, String)> = None;
    for kv in resp.kvs {
        let class = from_store(&kv.value, kv.mod_revision)?;
        let is_default = annotations
            .iter()
            .any(|a| class["metadata"]["annotations"][*a] == "true");
        if !is_default {
            continue;
        }
        let created = objects::meta_str(&class, "creationTimestamp")
            .unwrap_or_default()
            .to_owned();
        let name = objects::name(&class).unwrap_or_default().to_owned();
        if best
            .as_ref()
            .is_none_or(|(c, n)| created > *c || (created == *c && name < *n))
        {
            best = Some((created, name));
        }
    }
    Ok(best.map(|(_, name)| name))
}

/// The system namespaces cannot be deleted.
pub fn admit_delete(def: &ResourceDef, name: &str) -> Result<(), ApiError> {
    if (def.group, def.plural) == ("", "namespaces") && IMMORTAL_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(format!(
            "namespaces {name:?} is forbidden: this namespace may not be deleted"
        )));
    }
    Ok(())
}

fn default_tolerations(spec: &mut serde_json::Map<String, Value>) {
    const TAINTS: [&str; 2] = ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"];
    let existing = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let tolerates = |taint: &str| {
        existing.iter().any(|t| {
            let key = t["key"].as_str().unwrap_or_default();
            let effect = t["effect"].as_str().unwrap_or_default();
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        })
    };
    let mut tolerations = existing.clone();
    for taint in TAINTS {
        if !tolerates(taint) {
            tolerations.push(
                json!({"key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
            );
        }
    }
    if tolerations.len() != existing.len() {
        spec.insert("tolerations".into(), Value::Array(tolerations));
    }
}

async fn priority(store: &dyn Store, pod: &mut Value) -> Result<(), ApiError> {
    let def = resources::find("scheduling.k8s.io", "v1", "priorityclasses").expect("built in");
    let class_name = pod["spec"]["priorityClassName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let class = if class_name.is_empty() {
        global_default(store, def).await?
    } else {
        match store
            .get(&def.key(None, &class_name))
            .await
            .map_err(store_error)?
        {
            Some(kv) => Some(from_store(&kv.value, kv.mod_revision)?),
            None => {
                return Err(forbidden(
                    pod,
                    &format!("no PriorityClass with name {class_name} was found"),
                ));
            }
        }
    };
    let (value, policy) = match &class {
        Some(c) => (
            c["value"].as_i64().unwrap_or(0),
            c["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority")
                .to_owned(),
        ),
        None => (0, "PreemptLowerPriority".to_owned()),
    };
    if let Some(given) = pod["spec"]["priority"].as_i64()
        && given != value
    {
        return Err(forbidden(
            pod,
            &format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            ),
        ));
    }
    if let Some(given) = pod["spec"]["preemptionPolicy"].as_str()
        && given != policy
    {
        return Err(forbidden(
            pod,
            &format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
            ),
        ));
    }
    if let (Some(c), true) = (&class, class_name.is_empty()) {
        pod["spec"]["priorityClassName"] = objects::name(c).unwrap_or_default().into();
    }
    pod["spec"]["priority"] = value.into();
    pod["spec"]["preemptionPolicy"] = policy.into();
    Ok(())
}

async fn global_default(store: &dyn Store, def: &ResourceDef) -> Result<Option<Value>, ApiError> {
    let prefix = def.key_prefix(None);
    let resp = store
        .range(RangeRequest::new(KeyRange::prefix(&prefix)))
        .await
        .map_err(store_error)?;
    let mut best: Option<Value> = None;
    for kv in resp.kvs {
        let class = from_store(&kv.value, kv.mod_revision)?;
        if class["globalDefault"].as_bool() != Some(true) {
            continue;
        }
        // Several defaults: upstream takes the one with the lowest value.
        if best
            .as_ref()
            .is_none_or(|b| class["value"].as_i64() < b["value"].as_i64())
        {
            best = Some(class);
        }
    }
    Ok(best)
}

fn forbidden(pod: &Value, reason: &str) -> ApiError {
    let name = objects::name(pod).unwrap_or_default();
    let pods = GroupResource {
        group: "",
        resource: "pods",
    };
    ApiError::forbidden_object(pods, name, format!("pods {name:?} is forbidden: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_are_added_unless_already_tolerated() {
        let mut spec = serde_json::Map::new();
        default_tolerations(&mut spec);
        assert_eq!(
            spec["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        let everything = json!([{"operator": "Exists"}]);
        let mut spec = serde_json::Map::new();
        spec.insert("tolerations".into(), everything.clone());
        default_tolerations(&mut spec);
        assert_eq!(spec["tolerations"], everything);
    }
}
