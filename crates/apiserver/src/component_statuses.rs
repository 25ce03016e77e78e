//! core/v1 ComponentStatus (deprecated since 1.19 but still served, and used by clients'
//! tests and `kubectl get cs`): the health of the control plane's components, computed on
//! each read and never stored. The scheduler and controller manager run inside this process,
//! so they are healthy whenever the server answers; `etcd-0` is the datastore, probed with a
//! one-key read.

use apimachinery::resources::ResourceDef;
use apimachinery::status::ApiError;
use serde_json::{Value, json};

use crate::filter::Filter;
use crate::query::Query;
use crate::rest::Rest;

/// The components upstream's kube-apiserver reports, in its order.
const COMPONENTS: [&str; 3] = ["scheduler", "controller-manager", "etcd-0"];

/// The deprecation warning upstream sends with every ComponentStatus request.
pub const DEPRECATION: &str = "v1 ComponentStatus is deprecated in v1.19+";

pub fn is_component_statuses(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.plural == "componentstatuses"
}

/// One component's status; upstream answers an unknown name with a plain (500) error.
pub async fn get(rest: &Rest, name: &str) -> Result<Value, ApiError> {
    if !COMPONENTS.contains(&name) {
        return Err(ApiError::internal(format!("Component not found: {name}")));
    }
    let mut obj = status(name, probe(rest, name).await);
    let map = obj.as_object_mut().expect("an object");
    map.insert("kind".into(), "ComponentStatus".into());
    map.insert("apiVersion".into(), "v1".into());
    Ok(obj)
}

/// All components, filtered by the label and field selectors as upstream's list does.
pub async fn list(rest: &Rest, def: &ResourceDef, query: &Query) -> Result<Value, ApiError> {
    let filter = Filter::from_query(def, query)?;
    let mut items = Vec::new();
    for name in COMPONENTS {
        let item = status(name, probe(rest, name).await);
        if filter.matches(&item) {
            items.push(item);
        }
    }
    Ok(json!({"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": items}))
}

/// The probe's outcome: Ok(message) or Err(error).
async fn probe(rest: &Rest, name: &str) -> Result<&'static str, String> {
    if name != "etcd-0" {
        return Ok("ok");
    }
    let request = store::RangeRequest {
        limit: Some(1),
        ..store::RangeRequest::new(store::KeyRange::prefix("/registry/namespaces/"))
    };
    match rest.store.range(request).await {
        Ok(_) => Ok("ok"),
        Err(err) => Err(err.to_string()),
    }
}

/// A list item: upstream's object has no timestamp (`null`), one Healthy condition.
fn status(name: &str, probe: Result<&str, String>) -> Value {
    let condition = match probe {
        Ok(message) => json!({"type": "Healthy", "status": "True", "message": message}),
        Err(error) => json!({"type": "Healthy", "status": "False", "error": error}),
    };
    json!({
        "metadata": {"name": name, "creationTimestamp": null},
        "conditions": [condition],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_components_carry_the_error() {
        let healthy = status("scheduler", Ok("ok"));
        assert_eq!(
            healthy["conditions"],
            json!([{"type": "Healthy", "status": "True", "message": "ok"}])
        );
        assert_eq!(healthy["metadata"]["creationTimestamp"], Value::Null);
        let failed = status("etcd-0", Err("connection refused".into()));
        assert_eq!(
            failed["conditions"],
            json!([{"type": "Healthy", "status": "False", "error": "connection refused"}])
        );
    }
}
