//! Printers of workloads: `apps` (Deployment, ReplicaSet, StatefulSet, DaemonSet,
//! ControllerRevision), `batch` (Job, CronJob), `autoscaling` (HorizontalPodAutoscaler, v1 and
//! v2 shapes) and `policy` (PodDisruptionBudget).

use serde_json::Value;

use super::format::Ctx;
use super::format::{
    bool_ptr, containers, format_label_selector, format_labels, human_duration, int, int_or_string, list,
    name, nonempty, present, quantity, s, selector_string, timestamp,
};
use super::{AGE, CONTAINERS, Column, IMAGES, NAME, Printer, Row, SELECTOR, col, typed};

pub(super) fn printer(group: &str, kind: &str) -> Option<&'static Printer> {
    Some(match (group, kind) {
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "ReplicaSet") => &REPLICA_SET,
        ("apps", "StatefulSet") => &STATEFUL_SET,
        ("apps", "DaemonSet") => &DAEMON_SET,
        ("apps", "ControllerRevision") => &CONTROLLER_REVISION,
        ("batch", "Job") => &JOB,
        ("batch", "CronJob") => &CRON_JOB,
        ("autoscaling", "HorizontalPodAutoscaler") => &HPA,
        ("policy", "PodDisruptionBudget") => &PDB,
        _ => return None,
    })
}

/// `spec.replicas`; 1 (what upstream's defaulting stores) when not given.
fn replicas(obj: &Value) -> i64 {
    obj["spec"]["replicas"].as_i64().unwrap_or(1)
}

static DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "Number of the pod with ready state"),
        col("Up-to-date", "Total number of pods with the desired template"),
        col("Available", "Total number of available pods"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: |deploy, ctx| {
        let status = &deploy["status"];
        let (names, images) = containers(&deploy["spec"]["template"]["spec"]);
        let selector = selector_string(&deploy["spec"]["selector"]).unwrap_or_else(|()| "<invalid>".into());
        vec![
            name(deploy).into(),
            format!("{}/{}", int(&status["readyReplicas"]), replicas(deploy)).into(),
            int(&status["updatedReplicas"]).into(),
            int(&status["availableReplicas"]).into(),
            ctx.age(deploy).into(),
            names.into(),
            images.into(),
            selector.into(),
        ]
        .into()
    },
};

/// Columns of replica sets and replication controllers (upstream prints both alike).
pub(super) const REPLICA_COLUMNS: &[Column] = &[
    NAME,
    typed("Desired", "integer", "Desired number of replicas"),
    typed("Current", "integer", "Most recently observed number of replicas"),
    typed("Ready", "integer", "Number of ready replicas"),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// A row of [`REPLICA_COLUMNS`]; `selector` is printed the way the kind's selector type needs.
pub(super) fn replica_row(obj: &Value, ctx: &Ctx, selector: String) -> Row {
    let (names, images) = containers(&obj["spec"]["template"]["spec"]);
    vec![
        name(obj).into(),
        replicas(obj).into(),
        int(&obj["status"]["replicas"]).into(),
        int(&obj["status"]["readyReplicas"]).into(),
        ctx.age(obj).into(),
        names.into(),
        images.into(),
        selector.into(),
    ]
    .into()
}

static REPLICA_SET: Printer = Printer {
    columns: REPLICA_COLUMNS,
    row: |rs, ctx| replica_row(rs, ctx, format_label_selector(&rs["spec"]["selector"])),
};

static STATEFUL_SET: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    row: |sts, ctx| {
        let (names, images) = containers(&sts["spec"]["template"]["spec"]);
        vec![
            name(sts).into(),
            format!("{}/{}", int(&sts["status"]["readyReplicas"]), replicas(sts)).into(),
            ctx.age(sts).into(),
            names.into(),
            images.into(),
        ]
        .into()
    },
};

static DAEMON_SET: Printer = Printer {
    columns: &[
        NAME,
        typed(
            "Desired",
            "integer",
            "Number of nodes that should run the daemon pod",
        ),
        typed(
            "Current",
            "integer",
            "Number of nodes running at least one daemon pod",
        ),
        typed("Ready", "integer", "Number of nodes with a ready daemon pod"),
        typed(
            "Up-to-date",
            "integer",
            "Number of nodes running the updated daemon pod",
        ),
        typed(
            "Available",
            "integer",
            "Number of nodes with an available daemon pod",
        ),
        col("Node Selector", "The node selector of the pod template"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: |ds, ctx| {
        let status = &ds["status"];
        let pod_spec = &ds["spec"]["template"]["spec"];
        let (names, images) = containers(pod_spec);
        vec![
            name(ds).into(),
            int(&status["desiredNumberScheduled"]).into(),
            int(&status["currentNumberScheduled"]).into(),
            int(&status["numberReady"]).into(),
            int(&status["updatedNumberScheduled"]).into(),
            int(&status["numberAvailable"]).into(),
            format_labels(&pod_spec["nodeSelector"]).into(),
            ctx.age(ds).into(),
            names.into(),
            images.into(),
            format_label_selector(&ds["spec"]["selector"]).into(),
        ]
        .into()
    },
};

static CONTROLLER_REVISION: Printer = Printer {
    columns: &[
        NAME,
        col("Controller", "Controller of the object"),
        col("Revision", "The revision this object represents"),
        AGE,
    ],
    row: |cr, ctx| {
        let controller = list(&cr["metadata"]["ownerReferences"])
            .iter()
            .find(|r| r["controller"].as_bool() == Some(true))
            .map_or_else(
                || "<none>".to_owned(),
                |owner| {
                    // "apps/v1" → group "apps"; "v1" → the core group.
                    let group = s(&owner["apiVersion"]).rsplit_once('/').map_or("", |(g, _)| g);
                    let kind = s(&owner["kind"]);
                    let group_kind = match (group, kind) {
                        ("", "") => return s(&owner["name"]).to_owned(),
                        ("", kind) => kind.to_lowercase(),
                        (group, kind) => format!("{kind}.{group}").to_lowercase(),
                    };
                    format!("{group_kind}/{}", s(&owner["name"]))
                },
            );
        vec![
            name(cr).into(),
            controller.into(),
            int(&cr["revision"]).into(),
            ctx.age(cr).into(),
        ]
        .into()
    },
};

static JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "Status of the job"),
        col("Completions", "Succeeded pods of the desired completions"),
        col("Duration", "Time required to complete the job"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: |job, ctx| {
        let spec = &job["spec"];
        let status = &job["status"];
        let succeeded = int(&status["succeeded"]);
        let completions = match spec["completions"].as_i64() {
            Some(completions) => format!("{succeeded}/{completions}"),
            None => match int(&spec["parallelism"]) {
                parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
                _ => format!("{succeeded}/1"),
            },
        };
        let duration = match (
            timestamp(&status["startTime"]),
            timestamp(&status["completionTime"]),
        ) {
            (None, _) => String::new(),
            (Some(start), None) => human_duration(ctx.now.duration_since(start).as_nanos()),
            (Some(start), Some(end)) => human_duration(end.duration_since(start).as_nanos()),
        };
        let has = |kind: &str| {
            list(&status["conditions"])
                .iter()
                .find(|c| s(&c["type"]) == kind)
                .is_some_and(|c| s(&c["status"]) == "True")
        };
        let state = if has("Complete") {
            "Complete"
        } else if has("Failed") {
            "Failed"
        } else if present(&job["metadata"]["deletionTimestamp"]) {
            "Terminating"
        } else if has("Suspended") {
            "Suspended"
        } else if has("FailureTarget") {
            "FailureTarget"
        } else {
            "Running"
        };
        let (names, images) = containers(&spec["template"]["spec"]);
        vec![
            name(job).into(),
            state.into(),
            completions.into(),
            duration.into(),
            ctx.age(job).into(),
            names.into(),
            images.into(),
            format_label_selector(&spec["selector"]).into(),
        ]
        .into()
    },
};

static CRON_JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Schedule", "The schedule in Cron format"),
        col("Timezone", "The time zone of the schedule"),
        typed(
            "Suspend",
            "boolean",
            "Whether subsequent executions are suspended",
        ),
        typed("Active", "integer", "Number of currently running jobs"),
        col("Last Schedule", "When a job was last scheduled"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    row: |cj, ctx| {
        let spec = &cj["spec"];
        let last = if present(&cj["status"]["lastScheduleTime"]) {
            ctx.since(&cj["status"]["lastScheduleTime"])
        } else {
            "<none>".into()
        };
        // false is what upstream's defaulting stores when suspend is not given.
        let suspend = if present(&spec["suspend"]) {
            bool_ptr(&spec["suspend"])
        } else {
            "False".into()
        };
        let job_spec = &spec["jobTemplate"]["spec"];
        let (names, images) = containers(&job_spec["template"]["spec"]);
        vec![
            name(cj).into(),
            s(&spec["schedule"]).into(),
            nonempty(&spec["timeZone"]).unwrap_or("<none>").into(),
            suspend.into(),
            (list(&cj["status"]["active"]).len() as i64).into(),
            last.into(),
            ctx.age(cj).into(),
            names.into(),
            images.into(),
            format_label_selector(&job_spec["selector"]).into(),
        ]
        .into()
    },
};

static HPA: Printer = Printer {
    columns: &[
        NAME,
        col("Reference", "The scaled resource"),
        col("Targets", "Current and target values of the metrics"),
        col("MinPods", "Lower limit of replicas"),
        col("MaxPods", "Upper limit of replicas"),
        col("Replicas", "Current number of replicas"),
        AGE,
    ],
    row: |hpa, ctx| {
        let spec = &hpa["spec"];
        let target = &spec["scaleTargetRef"];
        // 1 is what upstream's defaulting stores when minReplicas is not given.
        let min = spec["minReplicas"].as_i64().unwrap_or(1);
        vec![
            name(hpa).into(),
            format!("{}/{}", s(&target["kind"]), s(&target["name"])).into(),
            hpa_targets(hpa).into(),
            min.to_string().into(),
            int(&spec["maxReplicas"]).into(),
            int(&hpa["status"]["currentReplicas"]).into(),
            ctx.age(hpa).into(),
        ]
        .into()
    },
};

/// The Targets cell (upstream's `formatHPAMetrics`) of an autoscaling/v2 object, or of a v1
/// one read as the v2 metric it converts to. An object with no metric shows upstream's default
/// metric, CPU at 80% utilization.
fn hpa_targets(hpa: &Value) -> String {
    let spec = &hpa["spec"];
    let status = &hpa["status"];
    let (specs, statuses): (Vec<Value>, Vec<Value>) = if !list(&spec["metrics"]).is_empty() {
        (
            list(&spec["metrics"]).to_vec(),
            list(&status["currentMetrics"]).to_vec(),
        )
    } else {
        let utilization = spec["targetCPUUtilizationPercentage"].as_i64().unwrap_or(80);
        let cpu = serde_json::json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": utilization}}});
        let current = match status["currentCPUUtilizationPercentage"].as_i64() {
            Some(now) => vec![serde_json::json!({"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": now}}})],
            None => Vec::new(),
        };
        (vec![cpu], current)
    };
    // A quantity that upstream holds by pointer: `<nil>` when absent.
    let q = |v: &Value| {
        if present(v) {
            quantity(v)
        } else {
            "<nil>".to_owned()
        }
    };
    let percent = |v: &Value| v.as_i64().map(|p| format!("{p}%"));
    let mut shown = Vec::new();
    for (i, metric) in specs.iter().enumerate() {
        let source = |field: &str| statuses.get(i).map(|st| &st[field]).filter(|v| v.is_object());
        let text = match s(&metric["type"]) {
            field @ ("External" | "Object") => {
                let key = if field == "External" { "external" } else { "object" };
                let target = &metric[key]["target"];
                if present(&target["averageValue"]) {
                    let current = source(key)
                        .map(|st| &st["current"]["averageValue"])
                        .filter(|v| present(v))
                        .map_or("<unknown>".to_owned(), quantity);
                    format!("{current}/{} (avg)", quantity(&target["averageValue"]))
                } else {
                    let current = source(key).map_or("<unknown>".to_owned(), |st| q(&st["current"]["value"]));
                    format!("{current}/{}", q(&target["value"]))
                }
            }
            "Pods" => {
                let current =
                    source("pods").map_or("<unknown>".to_owned(), |st| q(&st["current"]["averageValue"]));
                format!("{current}/{}", q(&metric["pods"]["target"]["averageValue"]))
            }
            field @ ("Resource" | "ContainerResource") => {
                let key = if field == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let source_spec = &metric[key];
                let target = &source_spec["target"];
                let resource = s(&source_spec["name"]);
                if present(&target["averageValue"]) {
                    let current =
                        source(key).map_or("<unknown>".to_owned(), |st| q(&st["current"]["averageValue"]));
                    format!("{resource}: {current}/{}", quantity(&target["averageValue"]))
                } else {
                    let current = source(key)
                        .and_then(|st| percent(&st["current"]["averageUtilization"]))
                        .unwrap_or_else(|| "<unknown>".into());
                    let target = percent(&target["averageUtilization"]).unwrap_or_else(|| "<auto>".into());
                    format!("{resource}: {current}/{target}")
                }
            }
            _ => "<unknown type>".into(),
        };
        shown.push(text);
    }
    super::format::with_more(&shown, 2, shown.len(), ", ")
}

static PDB: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Min Available",
            "The minimum number of pods that must be available",
        ),
        col(
            "Max Unavailable",
            "The maximum number of pods that may be unavailable",
        ),
        typed(
            "Allowed Disruptions",
            "integer",
            "Number of pods that may be disrupted now",
        ),
        AGE,
    ],
    row: |pdb, ctx| {
        let spec = &pdb["spec"];
        let bound = |v: &Value| {
            if present(v) {
                int_or_string(v)
            } else {
                "N/A".into()
            }
        };
        vec![
            name(pdb).into(),
            bound(&spec["minAvailable"]).into(),
            bound(&spec["maxUnavailable"]).into(),
            int(&pdb["status"]["disruptionsAllowed"]).into(),
            ctx.age(pdb).into(),
        ]
        .into()
    },
};

#[cfg(test)]
mod tests {
    use super::super::testing::{CREATED, check, headers, meta};
    use serde_json::json;

    fn template() -> serde_json::Value {
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}})
    }

    #[test]
    fn deployments_replicasets_statefulsets_daemonsets() {
        assert_eq!(
            headers("apps", "Deployment"),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers*",
                "Images*",
                "Selector*"
            ]
        );
        check(
            "apps",
            "Deployment",
            &[
                (
                    json!({"metadata": meta("web"), "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
                       "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
                    json!([
                        "web",
                        "2/3",
                        3,
                        2,
                        "60m",
                        "web,log",
                        "nginx:1.27,busybox",
                        "app=web"
                    ]),
                ),
                (
                    json!({"metadata": meta("bare")}),
                    json!(["bare", "0/1", 0, 0, "60m", "", "", ""]),
                ),
            ],
        );
        assert_eq!(
            headers("apps", "ReplicaSet"),
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Age",
                "Containers*",
                "Images*",
                "Selector*"
            ]
        );
        check(
            "apps",
            "ReplicaSet",
            &[(
                json!({"metadata": meta("web-5d9"), "spec": {"replicas": 3, "template": template(),
                    "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d9"}}},
                   "status": {"replicas": 3, "readyReplicas": 1}}),
                json!([
                    "web-5d9",
                    3,
                    3,
                    1,
                    "60m",
                    "web,log",
                    "nginx:1.27,busybox",
                    "app=web,pod-template-hash=5d9"
                ]),
            )],
        );
        assert_eq!(
            headers("apps", "StatefulSet"),
            ["Name", "Ready", "Age", "Containers*", "Images*"]
        );
        check(
            "apps",
            "StatefulSet",
            &[(
                json!({"metadata": meta("db"), "spec": {"replicas": 2, "template": template()}, "status": {"readyReplicas": 2}}),
                json!(["db", "2/2", "60m", "web,log", "nginx:1.27,busybox"]),
            )],
        );
        assert_eq!(
            headers("apps", "DaemonSet"),
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
                "Containers*",
                "Images*",
                "Selector*"
            ]
        );
        let mut ds_template = template();
        ds_template["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        check(
            "apps",
            "DaemonSet",
            &[(
                json!({"metadata": meta("agent"), "spec": {"template": ds_template, "selector": {"matchLabels": {"app": "agent"}}},
                   "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                              "updatedNumberScheduled": 3, "numberAvailable": 2}}),
                json!([
                    "agent",
                    3,
                    3,
                    2,
                    3,
                    2,
                    "kubernetes.io/os=linux",
                    "60m",
                    "web,log",
                    "nginx:1.27,busybox",
                    "app=agent"
                ]),
            )],
        );
        assert_eq!(
            headers("apps", "ControllerRevision"),
            ["Name", "Controller", "Revision", "Age"]
        );
        check(
            "apps",
            "ControllerRevision",
            &[
                (
                    json!({"metadata": {"name": "db-7f", "creationTimestamp": CREATED, "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "controller": true}]}, "revision": 2}),
                    json!(["db-7f", "statefulset.apps/db", 2, "60m"]),
                ),
                (
                    json!({"metadata": meta("orphan"), "revision": 1}),
                    json!(["orphan", "<none>", 1, "60m"]),
                ),
            ],
        );
    }

    #[test]
    fn jobs_and_cronjobs() {
        assert_eq!(
            headers("batch", "Job"),
            [
                "Name",
                "Status",
                "Completions",
                "Duration",
                "Age",
                "Containers*",
                "Images*",
                "Selector*"
            ]
        );
        let selector = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}});
        check(
            "batch",
            "Job",
            &[
                (
                    json!({"metadata": meta("done"), "spec": {"completions": 3, "template": template(), "selector": selector},
                       "status": {"succeeded": 3, "startTime": "2026-01-10T11:00:00Z", "completionTime": "2026-01-10T11:03:12Z",
                                  "conditions": [{"type": "Complete", "status": "True"}]}}),
                    json!([
                        "done",
                        "Complete",
                        "3/3",
                        "3m12s",
                        "60m",
                        "web,log",
                        "nginx:1.27,busybox",
                        "batch.kubernetes.io/controller-uid=u1"
                    ]),
                ),
                (
                    json!({"metadata": meta("run"), "spec": {"parallelism": 4, "template": template()},
                       "status": {"succeeded": 1, "startTime": "2026-01-10T11:59:30Z"}}),
                    json!([
                        "run",
                        "Running",
                        "1/1 of 4",
                        "30s",
                        "60m",
                        "web,log",
                        "nginx:1.27,busybox",
                        "<none>"
                    ]),
                ),
                (
                    json!({"metadata": meta("bad"), "spec": {}, "status": {"conditions": [
                    {"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]}}),
                    json!(["bad", "Failed", "0/1", "", "60m", "", "", "<none>"]),
                ),
                (
                    json!({"metadata": {"name": "bye", "creationTimestamp": CREATED, "deletionTimestamp": CREATED},
                       "status": {"conditions": [{"type": "Suspended", "status": "True"}]}}),
                    json!(["bye", "Terminating", "0/1", "", "60m", "", "", "<none>"]),
                ),
                (
                    json!({"metadata": meta("paused"), "status": {"conditions": [{"type": "Suspended", "status": "True"}]}}),
                    json!(["paused", "Suspended", "0/1", "", "60m", "", "", "<none>"]),
                ),
                (
                    json!({"metadata": meta("failing"), "status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}}),
                    json!(["failing", "FailureTarget", "0/1", "", "60m", "", "", "<none>"]),
                ),
            ],
        );
        assert_eq!(
            headers("batch", "CronJob"),
            [
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers*",
                "Images*",
                "Selector*"
            ]
        );
        check(
            "batch",
            "CronJob",
            &[
                (
                    json!({"metadata": meta("nightly"), "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Paris", "suspend": true,
                        "jobTemplate": {"spec": {"template": template()}}},
                       "status": {"active": [{"name": "j1"}], "lastScheduleTime": "2026-01-10T03:00:00Z"}}),
                    json!([
                        "nightly",
                        "0 3 * * *",
                        "Europe/Paris",
                        "True",
                        1,
                        "9h",
                        "60m",
                        "web,log",
                        "nginx:1.27,busybox",
                        "<none>"
                    ]),
                ),
                (
                    json!({"metadata": meta("new"), "spec": {"schedule": "@hourly"}}),
                    json!([
                        "new", "@hourly", "<none>", "False", 0, "<none>", "60m", "", "", "<none>"
                    ]),
                ),
            ],
        );
    }

    #[test]
    fn autoscalers_and_disruption_budgets() {
        assert_eq!(
            headers("autoscaling", "HorizontalPodAutoscaler"),
            [
                "Name",
                "Reference",
                "Targets",
                "MinPods",
                "MaxPods",
                "Replicas",
                "Age"
            ]
        );
        let target = json!({"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"});
        check(
            "autoscaling",
            "HorizontalPodAutoscaler",
            &[
                (
                    json!({"metadata": meta("v2"), "spec": {"scaleTargetRef": target, "minReplicas": 2, "maxReplicas": 10, "metrics": [
                        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}}
                    ]}, "status": {"currentReplicas": 3, "currentMetrics": [
                        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "120m"}}}
                    ]}}),
                    json!([
                        "v2",
                        "Deployment/web",
                        "cpu: 45%/60%, memory: <unknown>/500Mi + 1 more...",
                        "2",
                        10,
                        3,
                        "60m"
                    ]),
                ),
                (
                    json!({"metadata": meta("ext"), "spec": {"scaleTargetRef": target, "maxReplicas": 5, "metrics": [
                        {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}},
                        {"type": "Object", "object": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}
                    ]}, "status": {"currentMetrics": [
                        {"type": "External", "external": {"current": {"value": "12"}}},
                        {"type": "Object", "object": {"current": {"averageValue": "7"}}}
                    ]}}),
                    json!(["ext", "Deployment/web", "12/30, 7/10 (avg)", "1", 5, 0, "60m"]),
                ),
                (
                    json!({"metadata": meta("v1"), "spec": {"scaleTargetRef": target, "minReplicas": 1, "maxReplicas": 4,
                        "targetCPUUtilizationPercentage": 50}, "status": {"currentReplicas": 1, "currentCPUUtilizationPercentage": 20}}),
                    json!(["v1", "Deployment/web", "cpu: 20%/50%", "1", 4, 1, "60m"]),
                ),
                (
                    json!({"metadata": meta("default"), "spec": {"scaleTargetRef": target, "maxReplicas": 3}}),
                    json!([
                        "default",
                        "Deployment/web",
                        "cpu: <unknown>/80%",
                        "1",
                        3,
                        0,
                        "60m"
                    ]),
                ),
                (
                    json!({"metadata": meta("sidecar"), "spec": {"scaleTargetRef": target, "maxReplicas": 3, "metrics": [
                        {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app", "target": {"type": "Utilization"}}},
                        {"type": "Mystery"}
                    ]}}),
                    json!([
                        "sidecar",
                        "Deployment/web",
                        "cpu: <unknown>/<auto>, <unknown type>",
                        "1",
                        3,
                        0,
                        "60m"
                    ]),
                ),
            ],
        );
        assert_eq!(
            headers("policy", "PodDisruptionBudget"),
            [
                "Name",
                "Min Available",
                "Max Unavailable",
                "Allowed Disruptions",
                "Age"
            ]
        );
        check(
            "policy",
            "PodDisruptionBudget",
            &[
                (
                    json!({"metadata": meta("a"), "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}}),
                    json!(["a", "2", "N/A", 1, "60m"]),
                ),
                (
                    json!({"metadata": meta("b"), "spec": {"maxUnavailable": "25%"}}),
                    json!(["b", "N/A", "25%", 0, "60m"]),
                ),
            ],
        );
    }
}
