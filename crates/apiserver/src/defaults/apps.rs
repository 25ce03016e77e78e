//! apps/v1 defaults (pkg/apis/apps/v1/defaults.go).

use serde_json::{Map, Value};

use super::core::{embedded_meta, persistent_volume_claim, pod_template_in};
use super::{child, child_or_empty, default_unset, default_zero, items, zero};

type Obj = Map<String, Value>;

pub fn deployment(o: &mut Obj) {
    let Some(spec) = child_or_empty(o, "spec") else {
        return;
    };
    default_unset(spec, "replicas", 1);
    if let Some(strategy) = child_or_empty(spec, "strategy") {
        default_zero(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = child_or_empty(strategy, "rollingUpdate")
        {
            default_unset(rolling, "maxUnavailable", "25%");
            default_unset(rolling, "maxSurge", "25%");
        }
    }
    default_unset(spec, "revisionHistoryLimit", 10);
    default_unset(spec, "progressDeadlineSeconds", 600);
    pod_template_in(spec, "template");
}

pub fn replica_set(o: &mut Obj) {
    let Some(spec) = child_or_empty(o, "spec") else {
        return;
    };
    default_unset(spec, "replicas", 1);
    pod_template_in(spec, "template");
}

pub fn daemon_set(o: &mut Obj) {
    let Some(spec) = child_or_empty(o, "spec") else {
        return;
    };
    if let Some(strategy) = child_or_empty(spec, "updateStrategy") {
        default_zero(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = child_or_empty(strategy, "rollingUpdate")
        {
            default_unset(rolling, "maxUnavailable", 1);
            default_unset(rolling, "maxSurge", 0);
        }
    }
    default_unset(spec, "revisionHistoryLimit", 10);
    pod_template_in(spec, "template");
}

pub fn stateful_set(o: &mut Obj) {
    let Some(spec) = child_or_empty(o, "spec") else {
        return;
    };
    default_zero(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = child_or_empty(spec, "updateStrategy") {
        // Only a defaulted type brings a rollingUpdate; an explicit one keeps its absence.
        if zero(strategy, "type") {
            strategy.insert("type".into(), "RollingUpdate".into());
            default_unset(strategy, "rollingUpdate", Value::Object(Map::new()));
        }
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = child(strategy, "rollingUpdate")
        {
            default_unset(rolling, "partition", 0);
        }
    }
    if let Some(policy) = child_or_empty(spec, "persistentVolumeClaimRetentionPolicy") {
        default_zero(policy, "whenDeleted", "Retain");
        default_zero(policy, "whenScaled", "Retain");
    }
    default_unset(spec, "replicas", 1);
    default_unset(spec, "revisionHistoryLimit", 10);
    pod_template_in(spec, "template");
    for claim in items(spec, "volumeClaimTemplates") {
        embedded_meta(claim);
        persistent_volume_claim(claim);
    }
}
