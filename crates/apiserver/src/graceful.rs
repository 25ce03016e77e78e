//! Graceful deletion, as upstream's `rest.BeforeDelete` with the pod strategy's
//! `CheckGracefulDelete`: a pod bound to a node and still running is not removed by a DELETE
//! but marked (`deletionTimestamp` = now + grace period, `deletionGracePeriodSeconds`), and
//! stays until its node deletes it with a grace period of 0 (or a client forces that). Pods are
//! the only built-in kind with a graceful strategy.

use serde_json::Value;

use apimachinery::resources::ResourceDef;

use crate::objects::{meta_str, metadata_mut};

/// What a DELETE does to an object before (or instead of) removing it.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No graceful deletion applies: remove now (or mark for finalizers, as any kind).
    NotGraceful,
    /// Already being deleted gracefully and the request does not shorten it: nothing changes.
    Pending,
    /// The object was marked (or its grace period shortened) to this many seconds; at 0 it
    /// goes now unless finalizers hold it.
    Graceful(i64),
}

/// Decides and applies (on `obj`) what a DELETE with `options` (a DeleteOptions body) does.
pub fn before_delete(def: &ResourceDef, obj: &mut Value, options: &Value, now: jiff::Timestamp) -> Outcome {
    if (def.group, def.plural) != ("", "pods") {
        return Outcome::NotGraceful;
    }
    // Negative values count as 1 s on the delete path.
    let requested = options["gracePeriodSeconds"]
        .as_i64()
        .map(|p| if p < 0 { 1 } else { p });
    let current_grace = obj["metadata"]["deletionGracePeriodSeconds"]
        .as_i64()
        .map(|g| if g < 0 { 1 } else { g });
    if let Some(deleting) = meta_str(obj, "deletionTimestamp") {
        // Already being deleted: a request may only shorten the grace period.
        let Some(current_grace) = current_grace.filter(|g| *g > 0) else {
            return Outcome::NotGraceful;
        };
        let Some(period) = requested else {
            return Outcome::Pending;
        };
        if period >= current_grace {
            return Outcome::Pending;
        }
        let Ok(deleting) = deleting.parse::<jiff::Timestamp>() else {
            return Outcome::NotGraceful;
        };
        let at = deleting
            .checked_sub(jiff::SignedDuration::from_secs(current_grace - period))
            .unwrap_or(deleting);
        mark(obj, at, period);
        return Outcome::Graceful(period);
    }
    let period = pod_grace_period(obj, requested);
    let at = now
        .checked_add(jiff::SignedDuration::from_secs(period))
        .unwrap_or(now);
    mark(obj, at, period);
    if let Some(generation) = obj["metadata"]["generation"].as_i64().filter(|g| *g > 0) {
        metadata_mut(obj).insert("generation".into(), (generation + 1).into());
    }
    Outcome::Graceful(period)
}

/// The pod strategy's grace period: the request's, else the pod's
/// `terminationGracePeriodSeconds`; 0 for a pod on no node or one that has finished.
fn pod_grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    let period = requested
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(0);
    let unbound = pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
    let finished = matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    if unbound || finished {
        0
    } else if period < 0 {
        1
    } else {
        period
    }
}

fn mark(obj: &mut Value, at: jiff::Timestamp, period: i64) {
    let meta = metadata_mut(obj);
    meta.insert(
        "deletionTimestamp".into(),
        at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string().into(),
    );
    meta.insert("deletionGracePeriodSeconds".into(), period.into());
}

/// Whether an update that leaves `old` without finalizers removes it: only once its grace
/// period is over (upstream's `ShouldDeleteDuringUpdate`: deletionGracePeriodSeconds is 0).
/// A pod still terminating on its node stays, however its status changes.
pub fn delete_during_update(old: &Value, new: &Value) -> bool {
    let finalizers_gone = new["metadata"]
        .get("finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    finalizers_gone
        && meta_str(old, "deletionTimestamp").is_some()
        && old["metadata"]["deletionGracePeriodSeconds"].as_i64() == Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> &'static ResourceDef {
        apimachinery::resources::BUILTIN
            .iter()
            .find(|d| d.group.is_empty() && d.plural == "pods")
            .unwrap()
    }

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn bound_running_pod_is_marked_with_its_grace_period() {
        let mut pod = json!({"metadata": {"name": "a"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}});
        assert_eq!(
            before_delete(pods(), &mut pod, &json!({}), now()),
            Outcome::Graceful(30)
        );
        assert_eq!(pod["metadata"]["deletionTimestamp"], "2026-01-01T00:00:30Z");
        assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
        // A second delete may only shorten it.
        assert_eq!(
            before_delete(pods(), &mut pod, &json!({"gracePeriodSeconds": 60}), now()),
            Outcome::Pending
        );
        assert_eq!(
            before_delete(pods(), &mut pod, &json!({}), now()),
            Outcome::Pending
        );
        assert_eq!(
            before_delete(pods(), &mut pod, &json!({"gracePeriodSeconds": 10}), now()),
            Outcome::Graceful(10)
        );
        assert_eq!(pod["metadata"]["deletionTimestamp"], "2026-01-01T00:00:10Z");
        assert_eq!(
            before_delete(pods(), &mut pod, &json!({"gracePeriodSeconds": 0}), now()),
            Outcome::Graceful(0)
        );
        // At 0 nothing holds it any more.
        assert_eq!(
            before_delete(pods(), &mut pod, &json!({}), now()),
            Outcome::NotGraceful
        );
    }

    #[test]
    fn unbound_finished_and_forced_pods_go_at_once() {
        for (pod, options) in [
            (
                json!({"metadata": {}, "spec": {"terminationGracePeriodSeconds": 30}}),
                json!({}),
            ),
            (
                json!({"metadata": {}, "spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}}),
                json!({}),
            ),
            (
                json!({"metadata": {}, "spec": {"nodeName": "n"}}),
                json!({"gracePeriodSeconds": 0}),
            ),
        ] {
            let mut pod = pod;
            assert_eq!(
                before_delete(pods(), &mut pod, &options, now()),
                Outcome::Graceful(0)
            );
        }
        let mut negative = json!({"metadata": {}, "spec": {"nodeName": "n"}});
        assert_eq!(
            before_delete(pods(), &mut negative, &json!({"gracePeriodSeconds": -5}), now()),
            Outcome::Graceful(1)
        );
    }

    #[test]
    fn terminating_pod_survives_status_updates() {
        let old = json!({"metadata": {"deletionTimestamp": "x", "deletionGracePeriodSeconds": 30}});
        assert!(!delete_during_update(&old, &old));
        let old = json!({"metadata": {"deletionTimestamp": "x", "deletionGracePeriodSeconds": 0, "finalizers": ["f"]}});
        assert!(delete_during_update(&old, &json!({"metadata": {}})));
    }
}
