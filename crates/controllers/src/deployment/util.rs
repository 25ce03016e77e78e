//! The Deployment controller's arithmetic and bookkeeping, as upstream's
//! `deployment/util`: maxSurge / maxUnavailable from absolute numbers or percentages (surge
//! rounded up, unavailable down, never both zero), the pod-template-hash, the revision and
//! replica annotations on ReplicaSets, orderings of ReplicaSets, and conditions.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const DEPRECATED_ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// How long `revision-history` may grow (upstream's `maxRevHistoryLengthInChars`).
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

// Condition reasons, as upstream's.
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_status(rs: &ReplicaSet) -> k8s_openapi::api::apps::v1::ReplicaSetStatus {
    rs.status.clone().unwrap_or_default()
}

pub fn is_rolling_update(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// An int-or-percent scaled against `total` (upstream's `GetScaledValueFromIntOrPercent`).
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let percent = s
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let scaled = percent as f64 * f64::from(total) / 100.0;
            Ok(if round_up { scaled.ceil() } else { scaled.floor() } as i32)
        }
    }
}

/// maxSurge and maxUnavailable for `desired` replicas; both zero would stall a rollout, so
/// then one pod may be unavailable (upstream's `ResolveFenceposts`).
pub fn resolve_fenceposts(surge: &IntOrString, unavailable: &IntOrString, desired: i32) -> (i32, i32) {
    let surge = scaled_value(surge, desired, true).unwrap_or(0);
    let mut unavailable = scaled_value(unavailable, desired, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let default = IntOrString::String("25%".into());
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    resolve_fenceposts(
        rolling.max_surge.as_ref().unwrap_or(&default),
        rolling.max_unavailable.as_ref().unwrap_or(&default),
        replicas(d),
    )
}

pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    fenceposts(d).0
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling_update(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

pub fn revision_history_limit(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .filter(|l| *l != i32::MAX)
}

/// The pod-template-hash: FNV-32a of the template (canonical JSON) and the collision count,
/// spelled with upstream's safe alphabet (no vowels, no look-alikes).
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut write = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    write(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        write(&bytes);
    }
    safe_encode(&hash.to_string())
}

fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// Templates equal but for the pod-template-hash label (upstream's `EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(meta) = t.metadata.as_mut()
            && let Some(labels) = meta.labels.as_mut()
        {
            labels.remove(POD_TEMPLATE_HASH);
            if labels.is_empty() {
                meta.labels = None;
            }
        }
        serde_json::to_value(t).unwrap_or_default()
    };
    strip(a) == strip(b)
}

pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    rs.metadata.annotations.as_ref()?.get(REVISION)?.parse().ok()
}

pub fn max_revision(rss: &[ReplicaSet]) -> i64 {
    rss.iter().filter_map(revision).max().unwrap_or(0)
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, DESIRED_REPLICAS)?.parse().ok()
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, MAX_REPLICAS)?.parse().ok()
}

/// Sets desired-replicas and max-replicas; whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        if annotations.get(key).map(String::as_str) != Some(value.to_string().as_str()) {
            annotations.insert(key.to_owned(), value.to_string());
            changed = true;
        }
    }
    changed
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str())
}

fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | DEPRECATED_ROLLBACK_TO
    )
}

/// Copies the Deployment's annotations (e.g. `kubernetes.io/change-cause`) to the ReplicaSet.
fn copy_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy(k) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Annotations of the new ReplicaSet: the Deployment's, the revision (keeping earlier
/// revisions of a rolled-back-to ReplicaSet in revision-history), and for a ReplicaSet about
/// to be created the replica annotations. Whether anything changed.
pub fn set_new_rs_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: &str, exists: bool) -> bool {
    let mut changed = copy_annotations(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old_revision = annotations.get(REVISION).cloned();
    let old = match old_revision.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return false,
    };
    let Ok(new) = new_revision.parse::<i64>() else {
        return false;
    };
    if old < new {
        annotations.insert(REVISION.to_owned(), new_revision.to_owned());
        changed = true;
    }
    if let Some(old_revision) = old_revision.filter(|_| old < new) {
        let history = annotations.get(REVISION_HISTORY).cloned().unwrap_or_default();
        if history.is_empty() {
            annotations.insert(REVISION_HISTORY.to_owned(), old_revision);
        } else {
            let mut revisions: Vec<&str> = history.split(',').collect();
            let mut total = history.len() + old_revision.len() + 1;
            let mut start = 0;
            while total > MAX_REVISION_HISTORY_CHARS && start < revisions.len() {
                total -= revisions[start].len() + 1;
                start += 1;
            }
            if total <= MAX_REVISION_HISTORY_CHARS {
                revisions = revisions.split_off(start);
                revisions.push(&old_revision);
                annotations.insert(REVISION_HISTORY.to_owned(), revisions.join(","));
            }
        }
    }
    if !exists {
        let replicas = replicas(d);
        if set_replicas_annotations(rs, replicas, replicas + max_surge(d)) {
            changed = true;
        }
    }
    changed
}

/// Sets the Deployment's revision annotation; whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION.to_owned(), revision.to_owned());
    true
}

fn created(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Older first, then by name (upstream's `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Larger first, then older first (`ReplicaSetsBySizeOlder`).
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// Larger first, then newer first (`ReplicaSetsBySizeNewer`).
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// Lower revision first, then older first (`ReplicaSetsByRevision`).
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    revision(a)
        .unwrap_or(0)
        .cmp(&revision(b).unwrap_or(0))
        .then_with(|| by_creation(a, b))
}

pub fn sum<F: Fn(&ReplicaSet) -> i32>(rss: &[ReplicaSet], f: F) -> i32 {
    rss.iter().map(f).sum()
}

pub fn spec_total(rss: &[ReplicaSet]) -> i32 {
    sum(rss, rs_replicas)
}

pub fn actual_total(rss: &[ReplicaSet]) -> i32 {
    sum(rss, |rs| rs_status(rs).replicas)
}

pub fn ready_total(rss: &[ReplicaSet]) -> i32 {
    sum(rss, |rs| rs_status(rs).ready_replicas.unwrap_or(0))
}

pub fn available_total(rss: &[ReplicaSet]) -> i32 {
    sum(rss, |rs| rs_status(rs).available_replicas.unwrap_or(0))
}

pub fn active(rss: &[ReplicaSet]) -> Vec<ReplicaSet> {
    rss.iter().filter(|rs| rs_replicas(rs) > 0).cloned().collect()
}

pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

pub fn new_condition(type_: &str, status: &str, reason: &str, message: &str) -> DeploymentCondition {
    let now = Time(Timestamp::now());
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Sets a condition; same status and reason keep the old one, same status keeps its
/// transition time (upstream's `SetDeploymentCondition`).
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = self::condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_);
    status.conditions.get_or_insert_with(Vec::new).push(condition);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// The new ReplicaSet's size for the next step of a rollout (upstream's `NewRSNewReplicas`).
pub fn new_rs_new_replicas(d: &Deployment, all: &[ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let desired = replicas(d);
    if !is_rolling_update(d) {
        return desired;
    }
    let current = spec_total(all);
    let max_total = desired + max_surge(d);
    if current >= max_total {
        return rs_replicas(new_rs);
    }
    let up = (max_total - current).min(desired - rs_replicas(new_rs));
    rs_replicas(new_rs) + up
}

/// Whether the new ReplicaSet has all the replicas the Deployment wants, all available.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let Some(desired) = desired_replicas_annotation(rs) else {
        return false;
    };
    let want = replicas(d);
    rs_replicas(rs) == want && desired == want && rs_status(rs).available_replicas.unwrap_or(0) == want
}

/// What the ReplicaSet's share of a scaling by `to_add` is (upstream's `GetProportion`).
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = replicas(d) + max_surge(d);
    let annotated = max_replicas_annotation(rs)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    size.round() as i32 - rs_replicas(rs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(n: i32) -> IntOrString {
        IntOrString::Int(n)
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn surge_rounds_up_unavailable_rounds_down() {
        assert_eq!(resolve_fenceposts(&pct("25%"), &pct("25%"), 10), (3, 2));
        assert_eq!(resolve_fenceposts(&pct("25%"), &pct("25%"), 1), (1, 0));
        assert_eq!(resolve_fenceposts(&pct("10%"), &pct("10%"), 5), (1, 0));
        assert_eq!(resolve_fenceposts(&int(2), &int(1), 5), (2, 1));
        assert_eq!(resolve_fenceposts(&pct("0%"), &pct("30%"), 3), (0, 1));
        // Both zero: one may be unavailable so the rollout can move.
        assert_eq!(resolve_fenceposts(&int(0), &int(0), 4), (0, 1));
        assert_eq!(resolve_fenceposts(&pct("0%"), &pct("20%"), 4), (0, 1));
        assert_eq!(resolve_fenceposts(&pct("100%"), &pct("50%"), 3), (3, 1));
        assert!(scaled_value(&pct("x"), 3, true).is_err());
    }

    #[test]
    fn max_unavailable_is_capped_by_replicas() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d"},
            "spec": {"replicas": 2, "selector": {}, "template": {},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 5}}},
        }))
        .unwrap();
        assert_eq!(max_unavailable(&d), 2);
        assert_eq!(max_surge(&d), 0);
    }

    fn deployment(replicas: i32, surge: i32, unavailable: i32) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d"},
            "spec": {"replicas": replicas, "selector": {}, "template": {},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}},
        }))
        .unwrap()
    }

    fn rs(name: &str, replicas: i32, max_replicas: Option<i32>) -> ReplicaSet {
        let mut rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}, "spec": {"replicas": replicas, "selector": {}},
        }))
        .unwrap();
        if let Some(max) = max_replicas {
            set_replicas_annotations(&mut rs, max, max);
        }
        rs
    }

    #[test]
    fn the_new_replica_set_grows_within_the_surge() {
        let d = deployment(10, 3, 2);
        let old = rs("old", 10, None);
        let new = rs("new", 0, None);
        // 10 + 3 allowed: the new one may take 3 at once.
        assert_eq!(new_rs_new_replicas(&d, &[old.clone(), new.clone()], &new), 3);
        // Already at the limit: no growth.
        let new = rs("new", 3, None);
        assert_eq!(new_rs_new_replicas(&d, &[old, new.clone()], &new), 3);
        // Never beyond the Deployment's replicas.
        let new = rs("new", 9, None);
        assert_eq!(
            new_rs_new_replicas(&d, &[rs("old", 1, None), new.clone()], &new),
            10
        );
    }

    #[test]
    fn scaling_is_proportional_to_each_replica_sets_share() {
        // 8 + 5 replicas sized for 13 (10 + surge 3); scaled to 20 (max 23): shares of 10.
        let d = deployment(20, 3, 2);
        let (old, new) = (rs("old", 8, Some(13)), rs("new", 5, Some(13)));
        let first = proportion(&old, &d, 10, 0);
        assert_eq!(first, 6);
        assert_eq!(proportion(&new, &d, 10, first), 4);
        // Scaling down: 8·8/13 ≈ 5, so three fewer.
        let d = deployment(5, 3, 2);
        assert_eq!(proportion(&old, &d, -5, 0), -3);
    }

    #[test]
    fn hash_is_stable_and_depends_on_collisions() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        }))
        .unwrap();
        let h = compute_hash(&t, None);
        assert_eq!(h, compute_hash(&t, None));
        assert_ne!(h, compute_hash(&t, Some(1)));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn rolled_back_to_replica_sets_keep_their_history() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d", "annotations": {"kubernetes.io/change-cause": "v1", REVISION: "3"}},
            "spec": {"selector": {}, "template": {}},
        }))
        .unwrap();
        let mut rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "rs", "annotations": {REVISION: "1"}},
        }))
        .unwrap();
        assert!(set_new_rs_annotations(&d, &mut rs, "4", true));
        let a = rs.metadata.annotations.unwrap();
        assert_eq!(a[REVISION], "4");
        assert_eq!(a[REVISION_HISTORY], "1");
        assert_eq!(a["kubernetes.io/change-cause"], "v1");
        assert!(!a.contains_key(DESIRED_REPLICAS));
    }
}
