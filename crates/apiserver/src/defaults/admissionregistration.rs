//! Defaults of admissionregistration.k8s.io/v1 webhook configurations (upstream's
//! `SetDefaults_{Validating,Mutating}Webhook`, `SetDefaults_Rule`, `SetDefaults_ServiceReference`).

use serde_json::{Map, Value, json};

use super::{child, default_unset, items};

type Obj = Map<String, Value>;

/// Mutating or validating configuration: `mutating` adds `reinvocationPolicy`.
pub fn webhook_configuration(o: &mut Obj, mutating: bool) {
    for hook in items(o, "webhooks") {
        default_unset(hook, "failurePolicy", "Fail");
        default_unset(hook, "matchPolicy", "Equivalent");
        default_unset(hook, "namespaceSelector", json!({}));
        default_unset(hook, "objectSelector", json!({}));
        default_unset(hook, "timeoutSeconds", 10);
        if mutating {
            default_unset(hook, "reinvocationPolicy", "Never");
        }
        for rule in items(hook, "rules") {
            default_unset(rule, "scope", "*");
        }
        if let Some(service) = child(hook, "clientConfig").and_then(|c| child(c, "service")) {
            default_unset(service, "port", 443);
        }
    }
}
