//! Validation as upstream's `Validate*` functions (pkg/apis/<group>/validation): every failure
//! becomes a field cause of one 422 `Invalid` error whose message reads as upstream's
//! (`Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: …`).
//! Object metadata for every kind (`meta`), then per kind: pods and pod templates (`pod`),
//! workloads (`workloads`), services (`service`), config maps and secrets (`config`), RBAC,
//! claims, autoscalers, priority and storage classes, ingresses, disruption budgets (`other`).

mod admissionregistration;
mod config;
mod gorepr;
mod meta;
mod other;
mod pod;
mod service;
mod workloads;

use apimachinery::resources::ResourceDef;
use apimachinery::status::{ApiError, Cause};
use serde_json::Value;

use crate::objects;

/// Validates an object about to be stored (`old` is the current object on update).
pub fn validate(def: &ResourceDef, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = objects::name(obj).unwrap_or_default();
    let mut errs = Errs::default();
    meta::object_meta(def, obj, old, &mut errs);
    match (def.group, def.plural) {
        ("", "pods") => pod::pod(obj, old, &mut errs),
        ("", "namespaces") => meta::namespace_finalizers(obj, &mut errs),
        ("", "podtemplates") => pod::template(&obj["template"], "template", &mut errs),
        ("", "replicationcontrollers") => workloads::replication_controller(obj, old, &mut errs),
        ("", "services") => service::service(obj, old, &mut errs),
        ("", "configmaps") => config::config_map(obj, old, &mut errs),
        ("", "secrets") => config::secret(obj, old, &mut errs),
        ("apps", "deployments") => workloads::deployment(obj, old, &mut errs),
        ("apps", "replicasets") => workloads::replica_set(obj, old, &mut errs),
        ("apps", "statefulsets") => workloads::stateful_set(obj, old, &mut errs),
        ("apps", "daemonsets") => workloads::daemon_set(obj, old, &mut errs),
        ("batch", "jobs") => workloads::job(obj, old, &mut errs),
        ("batch", "cronjobs") => workloads::cron_job(obj, &mut errs),
        ("", "persistentvolumeclaims") if old.is_none() => other::persistent_volume_claim(obj, &mut errs),
        ("autoscaling", "horizontalpodautoscalers") => {
            // Upstream validates the internal (v2-shaped) object whichever version was sent.
            let v2 = crate::conversion::to_storage(def, obj.clone());
            other::horizontal_pod_autoscaler(&v2, &mut errs)
        }
        ("rbac.authorization.k8s.io", "roles") => other::role(obj, true, &mut errs),
        ("rbac.authorization.k8s.io", "clusterroles") => other::role(obj, false, &mut errs),
        ("rbac.authorization.k8s.io", "rolebindings") => other::role_binding(obj, old, false, &mut errs),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            other::role_binding(obj, old, true, &mut errs)
        }
        ("scheduling.k8s.io", "priorityclasses") => other::priority_class(obj, old, &mut errs),
        ("storage.k8s.io", "storageclasses") => other::storage_class(obj, old, &mut errs),
        ("networking.k8s.io", "ingresses") => other::ingress(obj, &mut errs),
        ("policy", "poddisruptionbudgets") => other::pod_disruption_budget(obj, &mut errs),
        ("certificates.k8s.io", "certificatesigningrequests") => {
            crate::certificates::validate(obj, &mut errs)
        }
        ("apiregistration.k8s.io", "apiservices") => other::api_service(obj, &mut errs),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => {
            admissionregistration::webhook_configuration(obj, true, &mut errs)
        }
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => {
            admissionregistration::webhook_configuration(obj, false, &mut errs)
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            errs.0.extend(crate::crd::definition::validate(obj, old))
        }
        _ => {}
    }
    if errs.0.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(def.group, def.kind, name, errs.0))
    }
}

/// Validates a write to `pods/{name}/ephemeralcontainers` (upstream's
/// `ValidatePodEphemeralContainersUpdate`): the pod's metadata and spec, then that existing
/// ephemeral containers are neither removed nor changed.
pub fn validate_ephemeral_containers_update(
    def: &ResourceDef,
    obj: &Value,
    old: &Value,
) -> Result<(), ApiError> {
    let name = objects::name(obj).unwrap_or_default();
    let mut errs = Errs::default();
    meta::object_meta(def, obj, Some(old), &mut errs);
    pod::spec(&obj["spec"], "spec", &mut errs);
    if old["metadata"]["annotations"]
        .get("kubernetes.io/config.mirror")
        .is_some()
    {
        errs = Errs::default();
        errs.forbidden("", "static pods do not support ephemeral containers");
    } else {
        pod::ephemeral_containers_update(&obj["spec"], &old["spec"], &mut errs);
    }
    if errs.0.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(def.group, def.kind, name, errs.0))
    }
}

/// Field errors in upstream's wording (k8s.io/apimachinery/pkg/util/validation/field).
#[derive(Default)]
pub(crate) struct Errs(pub Vec<Cause>);

impl Errs {
    pub fn required(&mut self, path: &str) {
        self.0.push(Cause::required(path));
    }

    pub fn required_because(&mut self, path: &str, detail: &str) {
        self.0.push(Cause::new(
            "FieldValueRequired",
            path,
            format!("Required value: {detail}"),
        ));
    }

    /// `Invalid value: <value>: detail`, the value printed as Go prints a scalar.
    pub fn invalid(&mut self, path: &str, value: &Value, detail: &str) {
        self.0.push(Cause::invalid(path, value, detail));
    }

    /// `Invalid value: <repr>: detail` with the value already in Go syntax.
    pub fn invalid_repr(&mut self, path: &str, repr: &str, detail: &str) {
        self.0.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {repr}: {detail}"),
        ));
    }

    pub fn not_supported(&mut self, path: &str, value: &Value, supported: &[&str]) {
        self.0.push(Cause::not_supported(path, value, supported));
    }

    pub fn forbidden(&mut self, path: &str, detail: &str) {
        self.0.push(Cause::forbidden(path, detail));
    }

    pub fn duplicate(&mut self, path: &str, repr: &str) {
        self.0.push(Cause::new(
            "FieldValueDuplicate",
            path,
            format!("Duplicate value: {repr}"),
        ));
    }

    pub fn not_found(&mut self, path: &str, value: &str) {
        self.0.push(Cause::new(
            "FieldValueNotFound",
            path,
            format!("Not found: {}", gorepr::quote(value)),
        ));
    }

    pub fn too_long(&mut self, path: &str, max: usize) {
        self.0.push(Cause::new(
            "FieldValueTooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }

    /// `field is immutable` when `new` differs from `old`.
    pub fn immutable(&mut self, path: &str, new: &Value, old: &Value, repr: impl Fn(&Value) -> String) {
        if new != old {
            self.invalid_repr(path, &repr(new), "field is immutable");
        }
    }

    /// `must be greater than or equal to 0` for a negative number.
    pub fn non_negative(&mut self, path: &str, value: &Value) {
        if value.as_i64().is_some_and(|v| v < 0) {
            self.invalid(path, value, "must be greater than or equal to 0");
        }
    }
}

#[cfg(test)]
mod tests;
