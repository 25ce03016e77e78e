//! core/v1 Event ⇄ events.k8s.io/v1 Event: the same object, some fields renamed
//! (upstream's `pkg/apis/events/v1` conversion).

use serde_json::Value;

use super::rename;

/// events.k8s.io/v1 name → core/v1 name; every other field is the same in both.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

pub(super) fn to_core(obj: &mut Value) -> bool {
    let Some(map) = obj.as_object_mut() else {
        return false;
    };
    for (events, core) in RENAMED {
        rename(map, events, core);
    }
    true
}

pub(super) fn from_core(obj: &mut Value) -> bool {
    let Some(map) = obj.as_object_mut() else {
        return false;
    };
    for (events, core) in RENAMED {
        rename(map, core, events);
    }
    // core/v1 keeps an empty source and a zero count (Go zero values); events.k8s.io/v1 omits them.
    if map
        .get("deprecatedSource")
        .and_then(Value::as_object)
        .is_some_and(|s| s.values().all(|v| v.as_str().is_none_or(str::is_empty)))
    {
        map.remove("deprecatedSource");
    }
    if map.get("deprecatedCount").and_then(Value::as_i64) == Some(0) {
        map.remove("deprecatedCount");
    }
    true
}
