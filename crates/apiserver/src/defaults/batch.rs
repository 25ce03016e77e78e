//! batch/v1 defaults (pkg/apis/batch/v1/defaults.go).

use serde_json::{Map, Value};

use super::core::{embedded_meta, pod_template_in};
use super::{child, child_or_empty, default_unset, default_zero, items, unset};

type Obj = Map<String, Value>;

pub fn job(o: &mut Obj) {
    let template_labels = o
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.as_object().is_some_and(|l| !l.is_empty()))
        .cloned();
    if let Some(labels) = template_labels
        && let Some(meta) = child_or_empty(o, "metadata")
    {
        default_zero(meta, "labels", labels);
    }
    let Some(spec) = child_or_empty(o, "spec") else {
        return;
    };
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), 1.into());
        spec.insert("parallelism".into(), 1.into());
    }
    default_unset(spec, "parallelism", 1);
    if unset(spec, "backoffLimit") {
        let limit = if unset(spec, "backoffLimitPerIndex") {
            6
        } else {
            i64::from(i32::MAX)
        };
        spec.insert("backoffLimit".into(), limit.into());
    }
    default_unset(spec, "completionMode", "NonIndexed");
    default_unset(spec, "suspend", false);
    let has_failure_policy = !unset(spec, "podFailurePolicy");
    if let Some(policy) = child(spec, "podFailurePolicy") {
        for rule in items(policy, "rules") {
            for pattern in items(rule, "onPodConditions") {
                default_zero(pattern, "status", "True");
            }
        }
    }
    default_unset(
        spec,
        "podReplacementPolicy",
        if has_failure_policy {
            "Failed"
        } else {
            "TerminatingOrFailed"
        },
    );
    default_unset(spec, "manualSelector", false);
    pod_template_in(spec, "template");
}

pub fn cron_job(o: &mut Obj) {
    let Some(spec) = child_or_empty(o, "spec") else {
        return;
    };
    default_zero(spec, "concurrencyPolicy", "Allow");
    default_unset(spec, "suspend", false);
    default_unset(spec, "successfulJobsHistoryLimit", 3);
    default_unset(spec, "failedJobsHistoryLimit", 1);
    if let Some(template) = child_or_empty(spec, "jobTemplate") {
        embedded_meta(template);
        if let Some(job_spec) = child(template, "spec") {
            pod_template_in(job_spec, "template");
        }
    }
}
