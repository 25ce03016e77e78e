//! Workloads: Deployments, ReplicaSets, StatefulSets, DaemonSets, ReplicationControllers,
//! Jobs and CronJobs (pkg/apis/apps/validation, pkg/apis/batch/validation, core's RC rules).

use apimachinery::selector::LabelSelector;
use serde_json::Value;

use super::gorepr::{label_selector, string_map};
use super::meta::labels_of;
use super::{Errs, pod};

const MISMATCH: &str = "`selector` does not match template `labels`";

/// The selector is required and not empty, and selects the template's labels.
fn selector_matches_template(spec: &Value, kind: &str, errs: &mut Errs) {
    let selector = &spec["selector"];
    if selector.is_null() {
        errs.required("spec.selector");
    } else {
        let count = selector["matchLabels"].as_object().map_or(0, |m| m.len())
            + selector["matchExpressions"].as_array().map_or(0, Vec::len);
        if count == 0 {
            errs.invalid_repr(
                "spec.selector",
                &label_selector(selector),
                &format!("empty selector is invalid for {kind}"),
            );
        }
        if let Some(labels) = selector["matchLabels"].as_object() {
            labels_of(labels, "spec.selector.matchLabels", errs);
        }
    }
    match LabelSelector::from_json(selector) {
        Err(_) => errs.invalid_repr(
            "spec.selector",
            &label_selector(selector),
            "invalid label selector",
        ),
        Ok(s) if !s.is_empty() && !s.is_nothing() => {
            let labels = &spec["template"]["metadata"]["labels"];
            if !s.matches_json(Some(labels)) {
                errs.invalid_repr("spec.template.metadata.labels", &string_map(labels), MISMATCH);
            }
        }
        Ok(_) => {}
    }
}

/// `ValidatePodTemplateSpecForReplicaSet`: the template, restarting always, no deadline.
fn replicated_template(spec: &Value, errs: &mut Errs) {
    pod::template(&spec["template"], "spec.template", errs);
    let pod_spec = &spec["template"]["spec"];
    let policy = &pod_spec["restartPolicy"];
    if !policy.is_null() && policy != "Always" {
        errs.not_supported("spec.template.spec.restartPolicy", policy, &["Always"]);
    }
    if !pod_spec["activeDeadlineSeconds"].is_null() {
        errs.invalid(
            "spec.template.spec.activeDeadlineSeconds",
            &pod_spec["activeDeadlineSeconds"],
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        );
    }
}

fn selector_immutable(new: &Value, old: Option<&Value>, errs: &mut Errs) {
    if let Some(old) = old {
        errs.immutable(
            "spec.selector",
            &new["spec"]["selector"],
            &old["spec"]["selector"],
            label_selector,
        );
    }
}

pub fn deployment(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = &obj["spec"];
    errs.non_negative("spec.replicas", &spec["replicas"]);
    selector_matches_template(spec, "deployment", errs);
    replicated_template(spec, errs);
    let strategy = &spec["strategy"];
    match strategy["type"].as_str() {
        Some("Recreate") => {
            if !strategy["rollingUpdate"].is_null() {
                errs.forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                );
            }
        }
        Some("RollingUpdate") => {
            let rolling = &strategy["rollingUpdate"];
            let is_zero = |v: &Value| v.as_i64() == Some(0) || v.as_str() == Some("0%");
            if is_zero(&rolling["maxUnavailable"]) && is_zero(&rolling["maxSurge"]) {
                errs.invalid_repr(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    &super::gorepr::int_or_string(&rolling["maxUnavailable"]),
                    "may not be 0 when `maxSurge` is 0",
                );
            }
        }
        _ => errs.not_supported(
            "spec.strategy.type",
            &strategy["type"],
            &["Recreate", "RollingUpdate"],
        ),
    }
    errs.non_negative("spec.minReadySeconds", &spec["minReadySeconds"]);
    errs.non_negative("spec.revisionHistoryLimit", &spec["revisionHistoryLimit"]);
    if let Some(deadline) = spec["progressDeadlineSeconds"].as_i64() {
        errs.non_negative("spec.progressDeadlineSeconds", &spec["progressDeadlineSeconds"]);
        if deadline <= spec["minReadySeconds"].as_i64().unwrap_or(0) {
            errs.invalid(
                "spec.progressDeadlineSeconds",
                &spec["progressDeadlineSeconds"],
                "must be greater than minReadySeconds",
            );
        }
    }
    selector_immutable(obj, old, errs);
}

pub fn replica_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = &obj["spec"];
    errs.non_negative("spec.replicas", &spec["replicas"]);
    errs.non_negative("spec.minReadySeconds", &spec["minReadySeconds"]);
    selector_matches_template(spec, "deployment", errs);
    replicated_template(spec, errs);
    selector_immutable(obj, old, errs);
}

pub fn daemon_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = &obj["spec"];
    selector_matches_template(spec, "daemonset", errs);
    replicated_template(spec, errs);
    errs.non_negative("spec.minReadySeconds", &spec["minReadySeconds"]);
    errs.non_negative("spec.revisionHistoryLimit", &spec["revisionHistoryLimit"]);
    let kind = &spec["updateStrategy"]["type"];
    if !kind.is_null() && kind != "RollingUpdate" && kind != "OnDelete" {
        errs.not_supported("spec.updateStrategy.type", kind, &["OnDelete", "RollingUpdate"]);
    }
    selector_immutable(obj, old, errs);
}

const STATEFULSET_UPDATE_MSG: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

pub fn stateful_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = &obj["spec"];
    let policy = &spec["podManagementPolicy"];
    if !policy.is_null() && policy != "OrderedReady" && policy != "Parallel" {
        errs.not_supported("spec.podManagementPolicy", policy, &["OrderedReady", "Parallel"]);
    }
    let kind = &spec["updateStrategy"]["type"];
    if !kind.is_null() && kind != "RollingUpdate" && kind != "OnDelete" {
        errs.not_supported("spec.updateStrategy.type", kind, &["OnDelete", "RollingUpdate"]);
    }
    errs.non_negative("spec.replicas", &spec["replicas"]);
    errs.non_negative("spec.minReadySeconds", &spec["minReadySeconds"]);
    selector_matches_template(spec, "statefulset", errs);
    replicated_template(spec, errs);
    if let Some(old) = old {
        let strip = |s: &Value| {
            let mut s = s.clone();
            if let Some(m) = s.as_object_mut() {
                for key in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                ] {
                    m.remove(key);
                }
            }
            s
        };
        if strip(spec) != strip(&old["spec"]) {
            errs.forbidden("spec", STATEFULSET_UPDATE_MSG);
        }
    }
}

pub fn replication_controller(obj: &Value, _old: Option<&Value>, errs: &mut Errs) {
    let spec = &obj["spec"];
    errs.non_negative("spec.replicas", &spec["replicas"]);
    errs.non_negative("spec.minReadySeconds", &spec["minReadySeconds"]);
    let selector = &spec["selector"];
    match selector.as_object().filter(|s| !s.is_empty()) {
        None => errs.required("spec.selector"),
        Some(set) => {
            labels_of(set, "spec.selector", errs);
            let labels = &spec["template"]["metadata"]["labels"];
            let matches = set.iter().all(|(k, v)| &labels[k] == v);
            if !spec["template"].is_null() && !matches {
                errs.invalid_repr("spec.template.metadata.labels", &string_map(labels), MISMATCH);
            }
        }
    }
    if spec["template"].is_null() {
        errs.required("spec.template");
    } else {
        replicated_template(spec, errs);
    }
}

/// The pod template of a Job: restarting only on failure or never.
fn job_template(template: &Value, path: &str, errs: &mut Errs) {
    pod::template(template, path, errs);
    let policy = &template["spec"]["restartPolicy"];
    if policy != "OnFailure" && policy != "Never" {
        errs.not_supported(
            &format!("{path}.spec.restartPolicy"),
            policy,
            &["OnFailure", "Never"],
        );
    }
}

pub fn job(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = &obj["spec"];
    for key in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ] {
        errs.non_negative(&format!("spec.{key}"), &spec[key]);
    }
    let mode = &spec["completionMode"];
    if !mode.is_null() && mode != "NonIndexed" && mode != "Indexed" {
        errs.not_supported("spec.completionMode", mode, &["NonIndexed", "Indexed"]);
    }
    if mode == "Indexed" && spec["completions"].is_null() {
        errs.required_because("spec.completions", "when completion mode is Indexed");
    }
    if !spec["selector"].is_null() {
        match LabelSelector::from_json(&spec["selector"]) {
            Err(_) => errs.invalid_repr(
                "spec.selector",
                &label_selector(&spec["selector"]),
                "invalid label selector",
            ),
            Ok(s) => {
                let labels = &spec["template"]["metadata"]["labels"];
                if !s.matches_json(Some(labels)) {
                    errs.invalid_repr("spec.template.metadata.labels", &string_map(labels), MISMATCH);
                }
            }
        }
    } else if spec["manualSelector"].as_bool() == Some(true) {
        errs.required("spec.selector");
    }
    job_template(&spec["template"], "spec.template", errs);
    if let Some(old) = old {
        selector_immutable(obj, Some(old), errs);
        let (new_t, old_t) = (&spec["template"], &old["spec"]["template"]);
        // Upstream lets a suspended job's scheduling directives change; everything else in the
        // template is fixed.
        if new_t != old_t && old["spec"]["suspend"].as_bool() != Some(true) {
            errs.invalid_repr("spec.template", "core.PodTemplateSpec{…}", "field is immutable");
        }
        if spec["completions"] != old["spec"]["completions"] && mode != "Indexed" {
            errs.immutable(
                "spec.completions",
                &spec["completions"],
                &old["spec"]["completions"],
                |v| v.as_i64().map_or_else(|| "null".into(), |n| n.to_string()),
            );
        }
    }
}

pub fn cron_job(obj: &Value, errs: &mut Errs) {
    let spec = &obj["spec"];
    match spec["schedule"].as_str() {
        None | Some("") => errs.required("spec.schedule"),
        Some(s) => {
            if let Err(detail) = cron_schedule(s) {
                errs.invalid("spec.schedule", &spec["schedule"], &detail);
            }
        }
    }
    let policy = &spec["concurrencyPolicy"];
    if !policy.is_null() && !["Allow", "Forbid", "Replace"].contains(&policy.as_str().unwrap_or("?")) {
        errs.not_supported("spec.concurrencyPolicy", policy, &["Allow", "Forbid", "Replace"]);
    }
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        errs.non_negative(&format!("spec.{key}"), &spec[key]);
    }
    job_template(
        &spec["jobTemplate"]["spec"]["template"],
        "spec.jobTemplate.spec.template",
        errs,
    );
}

/// A cron schedule: five fields (or a `@` descriptor), each a list of ranges and steps.
fn cron_schedule(schedule: &str) -> Result<(), String> {
    let schedule = schedule
        .strip_prefix("TZ=")
        .or_else(|| schedule.strip_prefix("CRON_TZ="))
        .map_or(schedule, |rest| rest.split_once(' ').map_or("", |(_, s)| s));
    if schedule.starts_with('@') {
        return match schedule {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly" => Ok(()),
            s if s.starts_with("@every ") => Ok(()),
            other => Err(format!("unrecognized descriptor: {other}")),
        };
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {schedule}",
            fields.len()
        ));
    }
    let ok = |f: &str| {
        f.split(',').all(|part| {
            let (range, step) = part.split_once('/').map_or((part, None), |(r, s)| (r, Some(s)));
            step.is_none_or(|s| s.parse::<u32>().is_ok())
                && (range == "*"
                    || range == "?"
                    || range
                        .split('-')
                        .all(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric())))
        })
    };
    match fields.iter().find(|f| !ok(f)) {
        Some(bad) => Err(format!("failed to parse int from {bad}")),
        None => Ok(()),
    }
}
