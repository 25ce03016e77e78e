//! Kind-specific rules applied before an object is first stored (upstream's
//! `PrepareForCreate` of each kind's strategy). One function per kind, as kinds gain rules.

use apimachinery::resources::ResourceDef;
use serde_json::{Value, json};

/// Adjusts a new object of `def`'s kind before validation and storage.
pub fn prepare_for_create(def: &ResourceDef, obj: &mut Value) {
    match (def.group, def.plural) {
        ("", "namespaces") => namespace(obj),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            crate::crd::definition::prepare_for_create(obj)
        }
        _ => {}
    }
}

/// Adjusts an updated object of `def`'s kind before validation and storage (upstream's
/// `PrepareForUpdate`).
pub fn prepare_for_update(def: &ResourceDef, obj: &mut Value) {
    if let ("apiextensions.k8s.io", "customresourcedefinitions") = (def.group, def.plural) {
        crate::crd::definition::prepare_for_update(obj)
    }
}

/// A namespace starts Active, with the `kubernetes` finalizer that the namespace controller
/// removes once everything in it is gone.
fn namespace(obj: &mut Value) {
    if obj["spec"]["finalizers"].as_array().is_none_or(Vec::is_empty) {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    obj["status"] = json!({"phase": "Active"});
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_start_active_with_the_kubernetes_finalizer() {
        let def = apimachinery::resources::find("", "v1", "namespaces").unwrap();
        let mut ns = json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}});
        prepare_for_create(def, &mut ns);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
    }
}
