//! Defaulting as upstream's `SetDefaults_*` functions and declarative `+default` markers
//! (pkg/apis/<group>/<version>/defaults.go and their generated `zz_generated.defaults.go`),
//! applied to every object a client writes (create, update and the result of a patch), before
//! the kind's strategy and validation. Kept to what upstream fills in, so `-o json` output and
//! `kubectl apply` diffs match a real cluster.
//!
//! Objects are untyped JSON: a field of the wrong type is left alone (validation reports it).

mod admissionregistration;
mod apps;
mod batch;
pub(crate) mod core;
mod other;

use apimachinery::resources::ResourceDef;
use serde_json::{Map, Value};

/// Applies `def`'s defaults to `obj` in place.
pub fn apply(def: &ResourceDef, obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    match (def.group, def.plural) {
        ("", "pods") => core::pod(o),
        ("", "podtemplates") => core::pod_template_in(o, "template"),
        ("", "replicationcontrollers") => core::replication_controller(o),
        ("", "services") => core::service(o),
        ("", "secrets") => core::secret(o),
        ("", "namespaces") => core::namespace(o),
        ("", "nodes") => core::node(o),
        ("", "persistentvolumes") => core::persistent_volume(o),
        ("", "persistentvolumeclaims") => core::persistent_volume_claim(o),
        ("", "endpoints") => core::endpoints(o),
        ("", "limitranges") => core::limit_range(o),
        ("", "resourcequotas") => core::resource_quota(o),
        ("apps", "deployments") => apps::deployment(o),
        ("apps", "replicasets") => apps::replica_set(o),
        ("apps", "statefulsets") => apps::stateful_set(o),
        ("apps", "daemonsets") => apps::daemon_set(o),
        ("batch", "jobs") => batch::job(o),
        ("batch", "cronjobs") => batch::cron_job(o),
        ("autoscaling", "horizontalpodautoscalers") => other::horizontal_pod_autoscaler(def.version, o),
        ("networking.k8s.io", "networkpolicies") => other::network_policy(o),
        ("networking.k8s.io", "ingressclasses") => other::ingress_class(o),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => other::role_binding(o),
        ("storage.k8s.io", "storageclasses") => other::storage_class(o),
        ("scheduling.k8s.io", "priorityclasses") => other::priority_class(o),
        ("discovery.k8s.io", "endpointslices") => other::endpoint_slice(o),
        ("apiregistration.k8s.io", "apiservices") => other::api_service(o),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => {
            admissionregistration::webhook_configuration(o, true)
        }
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => {
            admissionregistration::webhook_configuration(o, false)
        }
        _ => {}
    }
}

// Small helpers over JSON maps, named after what Go's zero-value checks mean.

/// The object at `key`, when it is one.
pub(crate) fn child<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key)?.as_object_mut()
}

/// The object at `key`, created empty when absent or null (a non-pointer struct in Go, or a
/// pointer the defaults allocate).
pub(crate) fn child_or_empty<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_owned(), Value::Object(Map::new()));
    }
    m.get_mut(key)?.as_object_mut()
}

/// The objects in the array at `key`.
pub(crate) fn items<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Whether `key` is absent or null (a nil pointer).
pub(crate) fn unset(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).is_none_or(Value::is_null)
}

/// Whether `key` holds Go's zero value: absent, null, "", 0, false, [] or {}.
pub(crate) fn zero(m: &Map<String, Value>, key: &str) -> bool {
    match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::Bool(b)) => !b,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
    }
}

/// Sets `key` when it holds the zero value (Go's `if x == "" { x = … }`).
pub(crate) fn default_zero(m: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    if zero(m, key) {
        m.insert(key.to_owned(), value.into());
    }
}

/// Sets `key` when it is absent or null (Go's `if x == nil { x = &… }`).
pub(crate) fn default_unset(m: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    if unset(m, key) {
        m.insert(key.to_owned(), value.into());
    }
}

/// `SetDefaults_ResourceList`: every quantity at `key` rounded up to milli units and written
/// in canonical form.
pub(crate) fn resource_list(m: &mut Map<String, Value>, key: &str) {
    if let Some(list) = child(m, key) {
        for value in list.values_mut() {
            if let Some(canonical) = crate::quantity::canonical_value(value, -3) {
                *value = canonical;
            }
        }
    }
}

#[cfg(test)]
mod tests;
