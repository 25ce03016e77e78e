//! Printers of the core group (`v1`): namespaces, config and secrets, pods and their
//! controllers, nodes, services and endpoints, events, volumes and quotas.

use serde_json::{Value, json};

use super::format::{
    Ctx, containers, flag, format_labels, int, int32, list, map_len, name, nonempty, or_none, present,
    quantity, s, timestamp, with_more,
};
use super::{AGE, Column, NAME, Printer, Row, col, wide};

pub(super) fn printer(group: &str, kind: &str) -> Option<&'static Printer> {
    Some(match (group, kind) {
        ("", "Namespace") => &NAMESPACE,
        ("", "ConfigMap") => &CONFIG_MAP,
        ("", "Secret") => &SECRET,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("", "Pod") => &POD,
        ("", "PodTemplate") => &POD_TEMPLATE,
        ("", "ReplicationController") => &REPLICATION_CONTROLLER,
        ("", "Node") => &NODE,
        ("", "Service") => &SERVICE,
        ("", "Endpoints") => &ENDPOINTS,
        ("", "Event") => &EVENT,
        ("events.k8s.io", "Event") => &EVENTS_V1_EVENT,
        ("", "PersistentVolume") => &PERSISTENT_VOLUME,
        ("", "PersistentVolumeClaim") => &PERSISTENT_VOLUME_CLAIM,
        ("", "ResourceQuota") => &RESOURCE_QUOTA,
        ("", "ComponentStatus") => &COMPONENT_STATUS,
        _ => return None,
    })
}

static NAMESPACE: Printer = Printer {
    columns: &[NAME, col("Status", "The status of the namespace"), AGE],
    row: |ns, ctx| {
        vec![
            name(ns).into(),
            s(&ns["status"]["phase"]).into(),
            ctx.age(ns).into(),
        ]
        .into()
    },
};

static CONFIG_MAP: Printer = Printer {
    columns: &[NAME, col("Data", "Number of data and binaryData entries"), AGE],
    row: |cm, ctx| {
        let entries = map_len(&cm["data"]) + map_len(&cm["binaryData"]);
        vec![name(cm).into(), entries.into(), ctx.age(cm).into()].into()
    },
};

static SECRET: Printer = Printer {
    columns: &[
        NAME,
        col("Type", "Type of the secret"),
        col("Data", "Number of data entries"),
        AGE,
    ],
    row: |secret, ctx| {
        // Opaque is what upstream's defaulting stores when no type is given.
        let kind = nonempty(&secret["type"]).unwrap_or("Opaque");
        vec![
            name(secret).into(),
            kind.into(),
            map_len(&secret["data"]).into(),
            ctx.age(secret).into(),
        ]
        .into()
    },
};

static SERVICE_ACCOUNT: Printer = Printer {
    columns: &[
        NAME,
        col("Secrets", "Number of secrets listed by the service account"),
        AGE,
    ],
    row: |sa, ctx| {
        vec![
            name(sa).into(),
            (list(&sa["secrets"]).len() as i64).into(),
            ctx.age(sa).into(),
        ]
        .into()
    },
};

static POD: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "The aggregate readiness state of this pod"),
        col("Status", "The aggregate status of the containers in this pod"),
        col("Restarts", "Container restarts, and when the last one was"),
        AGE,
        wide("IP", "The pod's IP address"),
        wide("Node", "The node the pod is bound to"),
        wide(
            "Nominated Node",
            "The node the scheduler nominated for preemption",
        ),
        wide("Readiness Gates", "Readiness gates that are true, of all"),
    ],
    row: pod_row,
};

/// Upstream's `printPod`: READY counts ready containers (restartable init containers, i.e.
/// sidecars, included); STATUS is the phase refined by the pod's reason, the first unfinished
/// init container, then the containers' waiting or terminated reasons, Terminating when being
/// deleted.
fn pod_row(pod: &Value, ctx: &Ctx) -> Row {
    let spec = &pod["spec"];
    let status = &pod["status"];
    // Pending is what upstream's create strategy stores before any kubelet reports.
    let phase = nonempty(&status["phase"]).unwrap_or("Pending");
    let init_specs = list(&spec["initContainers"]);
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| s(&c["name"]) == name && s(&c["restartPolicy"]) == "Always")
    };
    let total = list(&spec["containers"]).len()
        + init_specs
            .iter()
            .filter(|c| s(&c["restartPolicy"]) == "Always")
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart = None;
    let mut last_sidecar_restart = None;
    let later = |last: &mut Option<jiff::Timestamp>, container: &Value| {
        let finished = &container["lastState"]["terminated"]["finishedAt"];
        if let Some(ts) = timestamp(finished)
            && last.is_none_or(|l| l < ts)
        {
            *last = Some(ts);
        }
    };

    let mut reason = nonempty(&status["reason"]).unwrap_or(phase).to_owned();
    let conditions = list(&status["conditions"]);
    if conditions
        .iter()
        .any(|c| s(&c["type"]) == "PodScheduled" && s(&c["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    let mut initializing = false;
    for (i, container) in list(&status["initContainerStatuses"]).iter().enumerate() {
        let count = int32(&container["restartCount"]);
        restarts += count;
        later(&mut last_restart, container);
        let sidecar = restartable(s(&container["name"]));
        if sidecar {
            sidecar_restarts += count;
            later(&mut last_sidecar_restart, container);
        }
        let terminated = &container["state"]["terminated"];
        let waiting = &container["state"]["waiting"];
        if terminated.is_object() && int(&terminated["exitCode"]) == 0 {
            continue;
        }
        if sidecar && flag(&container["started"]) {
            if flag(&container["ready"]) {
                ready += 1;
            }
            continue;
        }
        reason = if terminated.is_object() {
            match nonempty(&terminated["reason"]) {
                Some(r) => format!("Init:{r}"),
                None if int(&terminated["signal"]) != 0 => {
                    format!("Init:Signal:{}", int(&terminated["signal"]))
                }
                None => format!("Init:ExitCode:{}", int(&terminated["exitCode"])),
            }
        } else if let Some(r) = nonempty(&waiting["reason"]).filter(|r| *r != "PodInitializing") {
            format!("Init:{r}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    let initialized = conditions
        .iter()
        .find(|c| s(&c["type"]) == "Initialized")
        .is_some_and(|c| s(&c["status"]) == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut running = false;
        for container in list(&status["containerStatuses"]).iter().rev() {
            restarts += int32(&container["restartCount"]);
            later(&mut last_restart, container);
            let waiting = &container["state"]["waiting"];
            let terminated = &container["state"]["terminated"];
            if let Some(r) = nonempty(&waiting["reason"]) {
                reason = r.to_owned();
            } else if let Some(r) = nonempty(&terminated["reason"]) {
                reason = r.to_owned();
            } else if terminated.is_object() {
                reason = match int(&terminated["signal"]) {
                    0 => format!("ExitCode:{}", int(&terminated["exitCode"])),
                    signal => format!("Signal:{signal}"),
                };
            } else if flag(&container["ready"]) && container["state"]["running"].is_object() {
                running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed but another still runs is not Completed.
        if reason == "Completed" && running {
            let pod_ready = conditions
                .iter()
                .any(|c| s(&c["type"]) == "Ready" && s(&c["status"]) == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }

    if present(&pod["metadata"]["deletionTimestamp"]) {
        if s(&status["reason"]) == "NodeLost" {
            reason = "Unknown".into();
        } else if !matches!(phase, "Succeeded" | "Failed") {
            reason = "Terminating".into();
        }
    }

    let restarts = match last_restart {
        Some(ts) if restarts != 0 => {
            let ago = super::format::human_duration(ctx.now.duration_since(ts).as_nanos());
            format!("{restarts} ({ago} ago)")
        }
        _ => restarts.to_string(),
    };

    let ip = list(&status["podIPs"])
        .first()
        .and_then(|ip| nonempty(&ip["ip"]))
        .or_else(|| nonempty(&status["podIP"]))
        .unwrap_or("<none>");
    let gates = list(&spec["readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let true_gates = gates
            .iter()
            .filter(|gate| {
                conditions
                    .iter()
                    .find(|c| c["type"] == gate["conditionType"])
                    .is_some_and(|c| s(&c["status"]) == "True")
            })
            .count();
        format!("{true_gates}/{}", gates.len())
    };
    let cells = vec![
        name(pod).into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts.into(),
        ctx.age(pod).into(),
        ip.into(),
        nonempty(&spec["nodeName"]).unwrap_or("<none>").into(),
        nonempty(&status["nominatedNodeName"]).unwrap_or("<none>").into(),
        readiness_gates.into(),
    ];
    let conditions = match phase {
        "Succeeded" => vec![completed("Succeeded", "The pod has completed successfully.")],
        "Failed" => vec![completed("Failed", "The pod failed.")],
        _ => Vec::new(),
    };
    Row { cells, conditions }
}

/// The `Completed` row condition upstream marks finished pods with.
fn completed(reason: &str, message: &str) -> Value {
    json!({"type": "Completed", "status": "True", "reason": reason, "message": message})
}

static POD_TEMPLATE: Printer = Printer {
    columns: &[
        NAME,
        col("Containers", "Names of each container in the template"),
        col("Images", "Images referenced by each container in the template"),
        col("Pod Labels", "The labels of the pod template"),
    ],
    row: |pt, _| {
        let (names, images) = containers(&pt["template"]["spec"]);
        let labels = format_labels(&pt["template"]["metadata"]["labels"]);
        vec![name(pt).into(), names.into(), images.into(), labels.into()].into()
    },
};

static REPLICATION_CONTROLLER: Printer = Printer {
    columns: super::workloads::REPLICA_COLUMNS,
    // A replication controller's selector is a plain label map.
    row: |rc, ctx| super::workloads::replica_row(rc, ctx, format_labels(&rc["spec"]["selector"])),
};

static NODE: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "The status of the node"),
        col("Roles", "The roles of the node"),
        AGE,
        col("Version", "Kubelet version reported by the node"),
        wide("Internal-IP", "The node's internal IP address"),
        wide("External-IP", "The node's external IP address"),
        wide("OS-Image", "OS image reported by the node"),
        wide("Kernel-Version", "Kernel version reported by the node"),
        wide(
            "Container-Runtime",
            "Container runtime version reported by the node",
        ),
    ],
    row: |node, ctx| {
        let status = &node["status"];
        let mut states = Vec::new();
        if let Some(ready) = list(&status["conditions"])
            .iter()
            .rev()
            .find(|c| s(&c["type"]) == "Ready")
        {
            states.push(if s(&ready["status"]) == "True" {
                "Ready"
            } else {
                "NotReady"
            });
        }
        if states.is_empty() {
            states.push("Unknown");
        }
        if flag(&node["spec"]["unschedulable"]) {
            states.push("SchedulingDisabled");
        }
        let address = |kind: &str| {
            list(&status["addresses"])
                .iter()
                .find(|a| s(&a["type"]) == kind)
                .map_or("<none>", |a| s(&a["address"]))
                .to_owned()
        };
        let info = &status["nodeInfo"];
        let known = |v: &Value| nonempty(v).unwrap_or("<unknown>").to_owned();
        vec![
            name(node).into(),
            states.join(",").into(),
            or_none(node_roles(node).join(",")).into(),
            ctx.age(node).into(),
            s(&info["kubeletVersion"]).into(),
            address("InternalIP").into(),
            address("ExternalIP").into(),
            known(&info["osImage"]).into(),
            known(&info["kernelVersion"]).into(),
            known(&info["containerRuntimeVersion"]).into(),
        ]
        .into()
    },
};

/// A node's roles: `node-role.kubernetes.io/<role>` labels and the value of a
/// `kubernetes.io/role` label, sorted and deduplicated.
fn node_roles(node: &Value) -> Vec<String> {
    let mut roles: Vec<String> = node["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(
            |(key, value)| match key.strip_prefix("node-role.kubernetes.io/") {
                Some(role) if !role.is_empty() => Some(role.to_owned()),
                Some(_) => None,
                None if key == "kubernetes.io/role" => nonempty(value).map(str::to_owned),
                None => None,
            },
        )
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

static SERVICE: Printer = Printer {
    columns: &[
        NAME,
        col("Type", "The type of the service"),
        col("Cluster-IP", "The cluster IP of the service"),
        col("External-IP", "The external addresses of the service"),
        col("Port(s)", "The ports of the service"),
        AGE,
        wide("Selector", "The label selector of the service's pods"),
    ],
    row: |svc, ctx| {
        let spec = &svc["spec"];
        let cluster_ip = list(&spec["clusterIPs"])
            .first()
            .and_then(nonempty)
            .or_else(|| nonempty(&spec["clusterIP"]))
            .unwrap_or("<none>");
        let ports: Vec<String> = list(&spec["ports"])
            .iter()
            .map(|p| {
                let protocol = nonempty(&p["protocol"]).unwrap_or("TCP");
                match int(&p["nodePort"]) {
                    0 => format!("{}/{protocol}", int(&p["port"])),
                    node_port => format!("{}:{node_port}/{protocol}", int(&p["port"])),
                }
            })
            .collect();
        vec![
            name(svc).into(),
            service_type(spec).into(),
            cluster_ip.into(),
            external_ip(svc).into(),
            or_none(ports.join(",")).into(),
            ctx.age(svc).into(),
            format_labels(&spec["selector"]).into(),
        ]
        .into()
    },
};

/// ClusterIP is what upstream's defaulting stores when no type is given.
fn service_type(spec: &Value) -> &str {
    nonempty(&spec["type"]).unwrap_or("ClusterIP")
}

/// The External-IP cell (upstream's `getServiceExternalIP`; the server prints wide, so load
/// balancer addresses are not shortened).
fn external_ip(svc: &Value) -> String {
    let spec = &svc["spec"];
    let external: Vec<&str> = list(&spec["externalIPs"]).iter().map(s).collect();
    match service_type(spec) {
        "ClusterIP" | "NodePort" => or_none(external.join(",")),
        "LoadBalancer" => {
            let mut addresses = load_balancer_addresses(&svc["status"]["loadBalancer"]);
            addresses.extend(external.iter().map(|a| a.to_string()));
            if addresses.is_empty() {
                "<pending>".into()
            } else {
                addresses.join(",")
            }
        }
        "ExternalName" => s(&spec["externalName"]).into(),
        _ => "<unknown>".into(),
    }
}

/// A load balancer status's IPs (or hostnames where there is no IP), sorted and
/// deduplicated.
pub(super) fn load_balancer_addresses(status: &Value) -> Vec<String> {
    let mut addresses: Vec<String> = list(&status["ingress"])
        .iter()
        .filter_map(|i| nonempty(&i["ip"]).or_else(|| nonempty(&i["hostname"])))
        .map(str::to_owned)
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

static COMPONENT_STATUS: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "Status of the component conditions"),
        col("Message", "Message of the component conditions"),
        col("Error", "Error of the component conditions"),
    ],
    row: |cs, _| {
        // Upstream's printComponentStatus: the Healthy condition decides; Unknown without one.
        let healthy = list(&cs["conditions"]).iter().find(|c| c["type"] == "Healthy");
        let (status, message, error) = match healthy {
            Some(c) if c["status"] == "True" => ("Healthy", s(&c["message"]), s(&c["error"])),
            Some(c) => ("Unhealthy", s(&c["message"]), s(&c["error"])),
            None => ("Unknown", "", ""),
        };
        vec![name(cs).into(), status.into(), message.into(), error.into()].into()
    },
};

static ENDPOINTS: Printer = Printer {
    columns: &[NAME, col("Endpoints", "The endpoints' addresses and ports"), AGE],
    row: |ep, ctx| vec![name(ep).into(), format_endpoints(ep).into(), ctx.age(ep).into()].into(),
};

/// Upstream's `formatEndpoints`: up to three `ip:port` (or bare IPs for port-less subsets).
fn format_endpoints(ep: &Value) -> String {
    let subsets = list(&ep["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut shown = Vec::new();
    let mut total = 0;
    for subset in subsets {
        let addresses = list(&subset["addresses"]);
        let ports = list(&subset["ports"]);
        if ports.is_empty() {
            total += addresses.len();
            shown.extend(addresses.iter().map(|a| s(&a["ip"]).to_owned()));
            continue;
        }
        for port in ports {
            total += addresses.len();
            shown.extend(addresses.iter().map(|a| {
                let ip = s(&a["ip"]);
                let port = int(&port["port"]);
                if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                }
            }));
        }
    }
    with_more(&shown, 3, total, ",")
}

static EVENT: Printer = Printer {
    columns: EVENT_COLUMNS,
    row: |event, ctx| event_row(&core_event(event), ctx),
};

static EVENTS_V1_EVENT: Printer = Printer {
    columns: EVENT_COLUMNS,
    row: |event, ctx| event_row(&events_v1_event(event), ctx),
};

const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "When the event was last seen"),
    col("Type", "The type of the event (Normal, Warning)"),
    col("Reason", "Why the event happened"),
    col("Object", "The object the event is about"),
    wide("Subobject", "The part of the object the event is about"),
    wide("Source", "The component that reported the event"),
    col("Message", "A human-readable description of the event"),
    wide("First Seen", "When the event was first seen"),
    wide("Count", "How many times the event occurred"),
    Column {
        format: "name",
        ..wide("Name", super::NAME_DOC)
    },
];

/// The fields of an event the printer reads, from either API's shape.
struct EventFields<'a> {
    name: &'a str,
    kind: &'a str,
    object_name: &'a str,
    field_path: &'a str,
    event_type: &'a str,
    reason: &'a str,
    message: &'a str,
    component: &'a str,
    host: &'a str,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    first: &'a Value,
    last: &'a Value,
    event_time: &'a Value,
    count: i64,
    series: &'a Value,
}

fn core_event(e: &Value) -> EventFields<'_> {
    EventFields {
        name: name(e),
        kind: s(&e["involvedObject"]["kind"]),
        object_name: s(&e["involvedObject"]["name"]),
        field_path: s(&e["involvedObject"]["fieldPath"]),
        event_type: s(&e["type"]),
        reason: s(&e["reason"]),
        message: s(&e["message"]),
        component: s(&e["source"]["component"]),
        host: s(&e["source"]["host"]),
        reporting_controller: s(&e["reportingComponent"]),
        reporting_instance: s(&e["reportingInstance"]),
        first: &e["firstTimestamp"],
        last: &e["lastTimestamp"],
        event_time: &e["eventTime"],
        count: int(&e["count"]),
        series: &e["series"],
    }
}

/// An `events.k8s.io/v1` Event read as the core fields it converts to.
fn events_v1_event(e: &Value) -> EventFields<'_> {
    EventFields {
        name: name(e),
        kind: s(&e["regarding"]["kind"]),
        object_name: s(&e["regarding"]["name"]),
        field_path: s(&e["regarding"]["fieldPath"]),
        event_type: s(&e["type"]),
        reason: s(&e["reason"]),
        message: s(&e["note"]),
        component: s(&e["deprecatedSource"]["component"]),
        host: s(&e["deprecatedSource"]["host"]),
        reporting_controller: s(&e["reportingController"]),
        reporting_instance: s(&e["reportingInstance"]),
        first: &e["deprecatedFirstTimestamp"],
        last: &e["deprecatedLastTimestamp"],
        event_time: &e["eventTime"],
        count: int(&e["deprecatedCount"]),
        series: &e["series"],
    }
}

/// Upstream's `printEvent` (wide, as the server prints).
fn event_row(e: &EventFields<'_>, ctx: &Ctx) -> Row {
    let first = if timestamp(e.first).is_some() {
        ctx.since(e.first)
    } else {
        ctx.since(e.event_time)
    };
    let mut last = if timestamp(e.last).is_some() {
        ctx.since(e.last)
    } else {
        first.clone()
    };
    let mut count = e.count;
    if e.series.is_object() {
        last = ctx.since(&e.series["lastObservedTime"]);
        count = int(&e.series["count"]);
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }
    let target = if e.object_name.is_empty() {
        e.kind.to_lowercase()
    } else {
        format!("{}/{}", e.kind.to_lowercase(), e.object_name)
    };
    let component = if e.component.is_empty() {
        e.reporting_controller
    } else {
        e.component
    };
    let instance = if e.host.is_empty() {
        e.reporting_instance
    } else {
        e.host
    };
    let source = if instance.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        last.into(),
        e.event_type.into(),
        e.reason.into(),
        target.into(),
        e.field_path.into(),
        source.into(),
        e.message.trim().into(),
        first.into(),
        count.into(),
        e.name.into(),
    ]
    .into()
}

static PERSISTENT_VOLUME: Printer = Printer {
    columns: &[
        NAME,
        col("Capacity", "The volume's storage capacity"),
        col("Access Modes", "The volume's access modes"),
        col("Reclaim Policy", "What happens to the volume when released"),
        col("Status", "The phase of the volume"),
        col("Claim", "The claim bound to the volume"),
        col("StorageClass", "StorageClass of the pv"),
        col("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
        col("Reason", "Why the volume is in its phase"),
        AGE,
        wide("VolumeMode", "Filesystem or Block"),
    ],
    row: |pv, ctx| {
        let spec = &pv["spec"];
        let claim = if spec["claimRef"].is_object() {
            format!(
                "{}/{}",
                s(&spec["claimRef"]["namespace"]),
                s(&spec["claimRef"]["name"])
            )
        } else {
            String::new()
        };
        let phase = if present(&pv["metadata"]["deletionTimestamp"]) {
            "Terminating"
        } else {
            s(&pv["status"]["phase"])
        };
        let class = pv["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"]
            .as_str()
            .unwrap_or_else(|| s(&spec["storageClassName"]));
        vec![
            name(pv).into(),
            quantity(&spec["capacity"]["storage"]).into(),
            access_modes(&spec["accessModes"]).into(),
            s(&spec["persistentVolumeReclaimPolicy"]).into(),
            phase.into(),
            claim.into(),
            class.into(),
            nonempty(&spec["volumeAttributesClassName"])
                .unwrap_or("<unset>")
                .into(),
            s(&pv["status"]["reason"]).into(),
            ctx.age(pv).into(),
            nonempty(&spec["volumeMode"]).unwrap_or("<unset>").into(),
        ]
        .into()
    },
};

static PERSISTENT_VOLUME_CLAIM: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "The phase of the claim"),
        col("Volume", "The volume bound to the claim"),
        col("Capacity", "The bound volume's capacity"),
        col("Access Modes", "The bound volume's access modes"),
        col("StorageClass", "StorageClass of the pvc"),
        col("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
        AGE,
        wide("VolumeMode", "Filesystem or Block"),
    ],
    row: |pvc, ctx| {
        let spec = &pvc["spec"];
        let phase = if present(&pvc["metadata"]["deletionTimestamp"]) {
            "Terminating"
        } else {
            s(&pvc["status"]["phase"])
        };
        let volume = s(&spec["volumeName"]);
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                quantity(&pvc["status"]["capacity"]["storage"]),
                access_modes(&pvc["status"]["accessModes"]),
            )
        };
        let class = pvc["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"]
            .as_str()
            .unwrap_or_else(|| s(&spec["storageClassName"]));
        vec![
            name(pvc).into(),
            phase.into(),
            volume.into(),
            capacity.into(),
            modes.into(),
            class.into(),
            nonempty(&spec["volumeAttributesClassName"])
                .unwrap_or("<unset>")
                .into(),
            ctx.age(pvc).into(),
            nonempty(&spec["volumeMode"]).unwrap_or("<unset>").into(),
        ]
        .into()
    },
};

/// Access modes as upstream abbreviates them, in its fixed order.
fn access_modes(modes: &Value) -> String {
    let modes: Vec<&str> = list(modes).iter().map(s).collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| modes.contains(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

static RESOURCE_QUOTA: Printer = Printer {
    columns: &[
        NAME,
        col("Request", "Used and hard request quotas"),
        col("Limit", "Used and hard limit quotas"),
        AGE,
    ],
    row: |quota, ctx| {
        let status = &quota["status"];
        let mut resources: Vec<&String> = status["hard"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        resources.sort();
        let (mut requests, mut limits) = (Vec::new(), Vec::new());
        for resource in resources {
            let text = format!(
                "{resource}: {}/{}",
                quantity(&status["used"][resource.as_str()]),
                quantity(&status["hard"][resource.as_str()])
            );
            if resource.starts_with("limits.") {
                limits.push(text);
            } else {
                requests.push(text);
            }
        }
        vec![
            name(quota).into(),
            requests.join(", ").into(),
            limits.join(", ").into(),
            ctx.age(quota).into(),
        ]
        .into()
    },
};

#[cfg(test)]
mod tests {
    use super::super::testing::{CREATED, check, headers, meta};
    use serde_json::json;

    #[test]
    fn namespaces_configmaps_secrets_serviceaccounts() {
        assert_eq!(headers("", "Namespace"), ["Name", "Status", "Age"]);
        check(
            "",
            "Namespace",
            &[(
                json!({"metadata": meta("demo"), "status": {"phase": "Active"}}),
                json!(["demo", "Active", "60m"]),
            )],
        );
        assert_eq!(headers("", "ConfigMap"), ["Name", "Data", "Age"]);
        check(
            "",
            "ConfigMap",
            &[
                (
                    json!({"metadata": meta("a"), "data": {"x": "1", "y": "2"}}),
                    json!(["a", 2, "60m"]),
                ),
                (
                    json!({"metadata": meta("b"), "binaryData": {"x": ""}}),
                    json!(["b", 1, "60m"]),
                ),
                (json!({"metadata": meta("c")}), json!(["c", 0, "60m"])),
            ],
        );
        assert_eq!(headers("", "Secret"), ["Name", "Type", "Data", "Age"]);
        check(
            "",
            "Secret",
            &[
                (
                    json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
                    json!(["tls", "kubernetes.io/tls", 2, "60m"]),
                ),
                (json!({"metadata": meta("o")}), json!(["o", "Opaque", 0, "60m"])),
            ],
        );
        assert_eq!(headers("", "ServiceAccount"), ["Name", "Secrets", "Age"]);
        check(
            "",
            "ServiceAccount",
            &[(
                json!({"metadata": meta("default"), "secrets": [{"name": "t"}]}),
                json!(["default", 1, "60m"]),
            )],
        );
    }

    #[test]
    fn pods() {
        assert_eq!(
            headers("", "Pod"),
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP*",
                "Node*",
                "Nominated Node*",
                "Readiness Gates*"
            ]
        );
        let running = json!({
            "metadata": meta("web"),
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}],
                     "readinessGates": [{"conditionType": "example.com/lb"}]},
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.9",
                "podIPs": [{"ip": "10.0.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "example.com/lb", "status": "True"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    {"name": "b", "ready": false, "restartCount": 2, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-10T11:59:30Z"}}}
                ]
            }
        });
        let pending = json!({
            "metadata": meta("new"),
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Pending"}
        });
        let crash = json!({
            "metadata": meta("crash"),
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 2, "finishedAt": "2026-01-10T11:56:48Z"}}}
            ]}
        });
        let completed = json!({
            "metadata": meta("job-x"),
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
            ]}
        });
        let killed = json!({
            "metadata": meta("k"),
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}
            ]}
        });
        let exit_code = json!({
            "metadata": meta("e"),
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 3}}}
            ]}
        });
        let init_running = json!({
            "metadata": meta("init"),
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "state": {"running": {}}}
            ], "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}
        });
        let init_failed = json!({
            "metadata": meta("initfail"),
            "spec": {"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "restartCount": 3, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
            ]}
        });
        let init_backoff = json!({
            "metadata": meta("initwait"),
            "spec": {"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
            ]}
        });
        let init_signal = json!({
            "metadata": meta("initsig"),
            "spec": {"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 137, "signal": 9}}}
            ]}
        });
        let sidecar = json!({
            "metadata": meta("side"),
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [
                    {"name": "proxy", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-10T10:00:00Z"}}}
                ],
                "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}]}
        });
        let terminating = json!({
            "metadata": {"name": "bye", "creationTimestamp": CREATED, "deletionTimestamp": "2026-01-10T11:59:00Z"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}]}
        });
        let lost = json!({
            "metadata": {"name": "lost", "creationTimestamp": CREATED, "deletionTimestamp": "2026-01-10T11:59:00Z"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "reason": "NodeLost"}
        });
        let deleted_done = json!({
            "metadata": {"name": "done", "creationTimestamp": CREATED, "deletionTimestamp": "2026-01-10T11:59:00Z"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded"}
        });
        let evicted = json!({
            "metadata": meta("ev"),
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "reason": "Evicted"}
        });
        let gated = json!({
            "metadata": meta("gated"),
            "spec": {"containers": [{"name": "a"}], "schedulingGates": [{"name": "g"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}
        });
        let partly_completed = json!({
            "metadata": meta("partial"),
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}], "containerStatuses": [
                {"name": "a", "ready": true, "state": {"running": {}}},
                {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
            ]}
        });
        let none = ["<none>", "<none>", "<none>", "<none>"];
        let row = |name: &str, ready: &str, status: &str, restarts: &str| {
            let mut cells = vec![
                json!(name),
                json!(ready),
                json!(status),
                json!(restarts),
                json!("60m"),
            ];
            cells.extend(none.iter().map(|c| json!(c)));
            serde_json::Value::Array(cells)
        };
        check(
            "",
            "Pod",
            &[
                (
                    running,
                    json!([
                        "web",
                        "1/2",
                        "Running",
                        "2 (30s ago)",
                        "60m",
                        "10.0.0.5",
                        "n1",
                        "<none>",
                        "1/1"
                    ]),
                ),
                (pending, row("new", "0/1", "Pending", "0")),
                (
                    json!({"metadata": meta("fresh"), "spec": {"containers": [{"name": "a"}]}}),
                    row("fresh", "0/1", "Pending", "0"),
                ),
                (crash, row("crash", "0/1", "CrashLoopBackOff", "5 (3m12s ago)")),
                (completed, row("job-x", "0/1", "Completed", "0")),
                (killed, row("k", "0/1", "Signal:9", "0")),
                (exit_code, row("e", "0/1", "ExitCode:3", "0")),
                (init_running, row("init", "0/1", "Init:1/2", "0")),
                (init_failed, row("initfail", "0/1", "Init:Error", "3")),
                (init_backoff, row("initwait", "0/1", "Init:ImagePullBackOff", "0")),
                (init_signal, row("initsig", "0/1", "Init:Signal:9", "0")),
                (sidecar, row("side", "2/2", "Running", "1 (120m ago)")),
                (terminating, row("bye", "1/1", "Terminating", "0")),
                (lost, row("lost", "0/1", "Unknown", "0")),
                (deleted_done, row("done", "0/1", "Succeeded", "0")),
                (evicted, row("ev", "0/1", "Evicted", "0")),
                (gated, row("gated", "0/1", "SchedulingGated", "0")),
                (partly_completed, row("partial", "1/2", "NotReady", "0")),
            ],
        );
    }

    #[test]
    fn finished_pods_carry_a_completed_condition() {
        let pod = json!({"metadata": meta("p"), "status": {"phase": "Succeeded"}});
        let row = (super::POD.row)(&pod, &super::super::testing::ctx());
        assert_eq!(row.conditions[0]["type"], "Completed");
        assert_eq!(row.conditions[0]["reason"], "Succeeded");
        let pod = json!({"metadata": meta("p"), "status": {"phase": "Running"}});
        assert!(
            (super::POD.row)(&pod, &super::super::testing::ctx())
                .conditions
                .is_empty()
        );
    }

    #[test]
    fn nodes() {
        assert_eq!(
            headers("", "Node"),
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP*",
                "External-IP*",
                "OS-Image*",
                "Kernel-Version*",
                "Container-Runtime*"
            ]
        );
        let node = json!({
            "metadata": {"name": "n1", "creationTimestamp": "2026-01-08T09:00:00Z", "labels": {
                "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "true",
                "kubernetes.io/role": "master", "node-role.kubernetes.io/": "x", "kubernetes.io/hostname": "n1"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.1.10"},
                              {"type": "InternalIP", "address": "192.168.1.11"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0",
                             "containerRuntimeVersion": "containerd://2.0.0"}
            }
        });
        let bare = json!({"metadata": meta("n2"), "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let empty = json!({"metadata": meta("n3")});
        check(
            "",
            "Node",
            &[
                (
                    node,
                    json!([
                        "n1",
                        "Ready,SchedulingDisabled",
                        "control-plane,etcd,master",
                        "2d3h",
                        "v1.33.0",
                        "192.168.1.10",
                        "<none>",
                        "Debian GNU/Linux 12",
                        "6.1.0",
                        "containerd://2.0.0"
                    ]),
                ),
                (
                    bare,
                    json!([
                        "n2",
                        "NotReady",
                        "<none>",
                        "60m",
                        "",
                        "<none>",
                        "<none>",
                        "<unknown>",
                        "<unknown>",
                        "<unknown>"
                    ]),
                ),
                (
                    empty,
                    json!([
                        "n3",
                        "Unknown",
                        "<none>",
                        "60m",
                        "",
                        "<none>",
                        "<none>",
                        "<unknown>",
                        "<unknown>",
                        "<unknown>"
                    ]),
                ),
            ],
        );
    }

    #[test]
    fn services_and_endpoints() {
        assert_eq!(
            headers("", "Service"),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector*"
            ]
        );
        check(
            "",
            "Service",
            &[
                (
                    json!({"metadata": meta("web"), "spec": {"type": "ClusterIP", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}], "selector": {"app": "web"}}}),
                    json!([
                        "web",
                        "ClusterIP",
                        "10.43.0.10",
                        "<none>",
                        "80/TCP,53/UDP",
                        "60m",
                        "app=web"
                    ]),
                ),
                (
                    json!({"metadata": meta("np"), "spec": {"type": "NodePort", "clusterIP": "10.43.0.11",
                        "externalIPs": ["1.2.3.4"], "ports": [{"port": 80, "nodePort": 30080}]}}),
                    json!([
                        "np",
                        "NodePort",
                        "10.43.0.11",
                        "1.2.3.4",
                        "80:30080/TCP",
                        "60m",
                        "<none>"
                    ]),
                ),
                (
                    json!({"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.43.0.12"], "externalIPs": ["9.9.9.9"],
                        "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]},
                       "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.7"}]}}}),
                    json!([
                        "lb",
                        "LoadBalancer",
                        "10.43.0.12",
                        "203.0.113.7,lb.example.com,9.9.9.9",
                        "443:31443/TCP",
                        "60m",
                        "<none>"
                    ]),
                ),
                (
                    json!({"metadata": meta("pending"), "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.13", "ports": [{"port": 80}]}}),
                    json!([
                        "pending",
                        "LoadBalancer",
                        "10.43.0.13",
                        "<pending>",
                        "80/TCP",
                        "60m",
                        "<none>"
                    ]),
                ),
                (
                    json!({"metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
                    json!([
                        "ext",
                        "ExternalName",
                        "<none>",
                        "db.example.com",
                        "<none>",
                        "60m",
                        "<none>"
                    ]),
                ),
                (
                    json!({"metadata": meta("headless"), "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}),
                    json!([
                        "headless",
                        "ClusterIP",
                        "None",
                        "<none>",
                        "5432/TCP",
                        "60m",
                        "<none>"
                    ]),
                ),
            ],
        );
        assert_eq!(headers("", "Endpoints"), ["Name", "Endpoints", "Age"]);
        check(
            "",
            "Endpoints",
            &[
                (
                    json!({"metadata": meta("none")}),
                    json!(["none", "<none>", "60m"]),
                ),
                (
                    json!({"metadata": meta("web"), "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}],
                        "ports": [{"port": 80}]}]}),
                    json!(["web", "10.0.0.1:80,[fd00::2]:80", "60m"]),
                ),
                (
                    json!({"metadata": meta("many"), "subsets": [
                        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
                        {"addresses": [{"ip": "10.0.0.9"}]}
                    ]}),
                    json!(["many", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...", "60m"]),
                ),
            ],
        );
    }

    #[test]
    fn component_statuses() {
        assert_eq!(
            headers("", "ComponentStatus"),
            ["Name", "Status", "Message", "Error"]
        );
        check(
            "",
            "ComponentStatus",
            &[
                (
                    json!({"metadata": {"name": "scheduler"}, "conditions": [
                        {"type": "Healthy", "status": "True", "message": "ok"}]}),
                    json!(["scheduler", "Healthy", "ok", ""]),
                ),
                (
                    json!({"metadata": {"name": "etcd-0"}, "conditions": [
                        {"type": "Other", "status": "True", "message": "no"},
                        {"type": "Healthy", "status": "False", "error": "refused"}]}),
                    json!(["etcd-0", "Unhealthy", "", "refused"]),
                ),
                (
                    json!({"metadata": {"name": "x"}}),
                    json!(["x", "Unknown", "", ""]),
                ),
            ],
        );
    }

    #[test]
    fn events() {
        assert_eq!(
            headers("", "Event"),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject*",
                "Source*",
                "Message",
                "First Seen*",
                "Count*",
                "Name*"
            ]
        );
        let classic = json!({
            "metadata": meta("web.1"),
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
            "type": "Warning", "reason": "BackOff", "message": "  Back-off restarting  \n",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2026-01-10T11:00:00Z", "lastTimestamp": "2026-01-10T11:59:00Z", "count": 7
        });
        let new_style = json!({
            "metadata": meta("x.2"),
            "involvedObject": {"kind": "Node"},
            "type": "Normal", "reason": "Starting", "message": "m",
            "reportingComponent": "kube-proxy", "eventTime": "2026-01-10T11:58:00.123456Z"
        });
        let series = json!({
            "metadata": meta("s.3"),
            "involvedObject": {"kind": "Pod", "name": "p"},
            "type": "Normal", "reason": "Pulled", "message": "m",
            "source": {"component": "kubelet"},
            "eventTime": "2026-01-10T11:00:00.000000Z",
            "series": {"count": 4, "lastObservedTime": "2026-01-10T11:59:50.000000Z"}
        });
        check(
            "",
            "Event",
            &[
                (
                    classic,
                    json!([
                        "60s",
                        "Warning",
                        "BackOff",
                        "pod/web",
                        "spec.containers{a}",
                        "kubelet, n1",
                        "Back-off restarting",
                        "60m",
                        7,
                        "web.1"
                    ]),
                ),
                (
                    new_style,
                    json!([
                        "119s",
                        "Normal",
                        "Starting",
                        "node",
                        "",
                        "kube-proxy",
                        "m",
                        "119s",
                        1,
                        "x.2"
                    ]),
                ),
                (
                    series,
                    json!([
                        "10s", "Normal", "Pulled", "pod/p", "", "kubelet", "m", "60m", 4, "s.3"
                    ]),
                ),
            ],
        );
        assert_eq!(headers("events.k8s.io", "Event"), headers("", "Event"));
        check(
            "events.k8s.io",
            "Event",
            &[(
                json!({
                    "metadata": meta("e.1"),
                    "regarding": {"kind": "Deployment", "name": "web"},
                    "type": "Normal", "reason": "ScalingReplicaSet", "note": "Scaled up",
                    "reportingController": "deployment-controller", "reportingInstance": "cp-1",
                    "eventTime": "2026-01-10T11:59:00.000000Z"
                }),
                json!([
                    "60s",
                    "Normal",
                    "ScalingReplicaSet",
                    "deployment/web",
                    "",
                    "deployment-controller, cp-1",
                    "Scaled up",
                    "60s",
                    1,
                    "e.1"
                ]),
            )],
        );
    }

    #[test]
    fn volumes_and_claims() {
        assert_eq!(
            headers("", "PersistentVolume"),
            [
                "Name",
                "Capacity",
                "Access Modes",
                "Reclaim Policy",
                "Status",
                "Claim",
                "StorageClass",
                "VolumeAttributesClass",
                "Reason",
                "Age",
                "VolumeMode*"
            ]
        );
        check(
            "",
            "PersistentVolume",
            &[
                (
                    json!({"metadata": meta("pv1"), "spec": {"capacity": {"storage": "10Gi"},
                        "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                        "claimRef": {"namespace": "demo", "name": "data"}, "volumeMode": "Filesystem"},
                       "status": {"phase": "Bound"}}),
                    json!([
                        "pv1",
                        "10Gi",
                        "RWO,RWX",
                        "Retain",
                        "Bound",
                        "demo/data",
                        "fast",
                        "<unset>",
                        "",
                        "60m",
                        "Filesystem"
                    ]),
                ),
                (
                    json!({"metadata": {"name": "pv2", "creationTimestamp": CREATED, "deletionTimestamp": CREATED,
                        "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
                       "spec": {"storageClassName": "new", "volumeAttributesClassName": "gold"},
                       "status": {"phase": "Released", "reason": "gone"}}),
                    json!([
                        "pv2",
                        "0",
                        "",
                        "",
                        "Terminating",
                        "",
                        "old",
                        "gold",
                        "gone",
                        "60m",
                        "<unset>"
                    ]),
                ),
            ],
        );
        assert_eq!(
            headers("", "PersistentVolumeClaim"),
            [
                "Name",
                "Status",
                "Volume",
                "Capacity",
                "Access Modes",
                "StorageClass",
                "VolumeAttributesClass",
                "Age",
                "VolumeMode*"
            ]
        );
        check(
            "",
            "PersistentVolumeClaim",
            &[
                (
                    json!({"metadata": meta("data"), "spec": {"volumeName": "pv1", "storageClassName": "fast",
                        "resources": {"requests": {"storage": "5Gi"}}, "volumeMode": "Block"},
                       "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOncePod"]}}),
                    json!([
                        "data", "Bound", "pv1", "10Gi", "RWOP", "fast", "<unset>", "60m", "Block"
                    ]),
                ),
                (
                    json!({"metadata": meta("wait"), "spec": {"resources": {"requests": {"storage": "5Gi"}}},
                       "status": {"phase": "Pending"}}),
                    json!(["wait", "Pending", "", "", "", "", "<unset>", "60m", "<unset>"]),
                ),
            ],
        );
    }

    #[test]
    fn controllers_templates_and_quotas() {
        assert_eq!(
            headers("", "ReplicationController"),
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
            "",
            "ReplicationController",
            &[(
                json!({"metadata": meta("rc"), "spec": {"replicas": 3, "selector": {"app": "x"},
                    "template": {"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "busybox"}]}}},
                   "status": {"replicas": 3, "readyReplicas": 2}}),
                json!(["rc", 3, 3, 2, "60m", "a,b", "nginx,busybox", "app=x"]),
            )],
        );
        assert_eq!(
            headers("", "PodTemplate"),
            ["Name", "Containers", "Images", "Pod Labels"]
        );
        check(
            "",
            "PodTemplate",
            &[(
                json!({"metadata": meta("pt"), "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}}}),
                json!(["pt", "c", "i", "a=b"]),
            )],
        );
        assert_eq!(headers("", "ResourceQuota"), ["Name", "Request", "Limit", "Age"]);
        check(
            "",
            "ResourceQuota",
            &[(
                json!({"metadata": meta("q"), "status": {
                "hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "8Gi"},
                "used": {"pods": "3", "limits.memory": "1Gi"}}}),
                json!([
                    "q",
                    "pods: 3/10, requests.cpu: 0/4",
                    "limits.memory: 1Gi/8Gi",
                    "60m"
                ]),
            )],
        );
    }
}
