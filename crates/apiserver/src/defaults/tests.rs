use apimachinery::resources::find;
use serde_json::{Value, json};

use super::apply;

fn defaulted(group: &str, version: &str, plural: &str, mut obj: Value) -> Value {
    apply(find(group, version, plural).unwrap(), &mut obj);
    obj
}

#[test]
fn pods_get_spec_and_container_defaults() {
    let pod = defaulted(
        "",
        "v1",
        "pods",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
             "resources": {"limits": {"cpu": "1", "memory": "1024Mi"}, "requests": {"cpu": 0.5}},
             "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
             "livenessProbe": {"httpGet": {"port": 80}}},
            {"name": "b", "image": "nginx:1.27"},
            {"name": "c", "image": "nginx@sha256:abc"},
            {"name": "d", "image": "registry.local:5000/app:latest", "imagePullPolicy": "Never"}],
            "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]}}),
    );
    let spec = &pod["spec"];
    for (key, value) in [
        ("dnsPolicy", json!("ClusterFirst")),
        ("restartPolicy", json!("Always")),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
        ("terminationGracePeriodSeconds", json!(30)),
        ("enableServiceLinks", json!(true)),
    ] {
        assert_eq!(spec[key], value, "{key}");
    }
    let a = &spec["containers"][0];
    assert_eq!(a["imagePullPolicy"], "Always");
    assert_eq!(a["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(a["terminationMessagePolicy"], "File");
    assert_eq!(a["ports"][0]["protocol"], "TCP");
    assert_eq!(a["resources"]["limits"], json!({"cpu": "1", "memory": "1Gi"}));
    assert_eq!(
        a["resources"]["requests"],
        json!({"cpu": "500m", "memory": "1Gi"})
    );
    assert_eq!(a["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(
        a["livenessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
               "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["containers"][1]["resources"], json!({}));
    assert_eq!(spec["containers"][2]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["containers"][3]["imagePullPolicy"], "Never");
    assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
    assert_eq!(spec["volumes"][1]["secret"]["defaultMode"], 420);
}

#[test]
fn image_tags_as_upstream_parses_them() {
    use super::core::image_tag;
    assert_eq!(image_tag("nginx").as_deref(), Some("latest"));
    assert_eq!(image_tag("nginx:latest").as_deref(), Some("latest"));
    assert_eq!(image_tag("localhost:5000/nginx").as_deref(), Some("latest"));
    assert_eq!(image_tag("localhost:5000/nginx:1.2").as_deref(), Some("1.2"));
    assert_eq!(image_tag("nginx@sha256:0123"), None);
    assert_eq!(image_tag("Nginx"), None);
    assert_eq!(image_tag(""), None);
}

#[test]
fn workloads_get_their_defaults_and_template_defaults() {
    let d = defaulted(
        "apps",
        "v1",
        "deployments",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}}),
    );
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(
        d["spec"]["template"]["metadata"],
        json!({"creationTimestamp": null})
    );
    let template = &d["spec"]["template"]["spec"];
    assert_eq!(template["restartPolicy"], "Always");
    assert!(template.get("enableServiceLinks").is_none(), "pod-only default");
    let recreate = defaulted(
        "apps",
        "v1",
        "deployments",
        json!({"spec": {"strategy": {"type": "Recreate"}}}),
    );
    assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));

    let sts = defaulted(
        "apps",
        "v1",
        "statefulsets",
        json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}}),
    );
    assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        sts["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["status"]["phase"],
        "Pending"
    );

    let ds = defaulted("apps", "v1", "daemonsets", json!({"spec": {}}));
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );

    let rc = defaulted(
        "",
        "v1",
        "replicationcontrollers",
        json!({"metadata": {}, "spec": {"template": {"metadata": {"labels": {"app": "x"}}}}}),
    );
    assert_eq!(rc["spec"]["selector"], json!({"app": "x"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "x"}));
    assert_eq!(rc["spec"]["replicas"], 1);
}

#[test]
fn jobs_and_cronjobs() {
    let job = defaulted("batch", "v1", "jobs", json!({"spec": {"template": {"spec": {}}}}));
    for (key, value) in [
        ("completions", json!(1)),
        ("parallelism", json!(1)),
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
        ("podReplacementPolicy", json!("TerminatingOrFailed")),
        ("manualSelector", json!(false)),
    ] {
        assert_eq!(job["spec"][key], value, "{key}");
    }
    let parallel = defaulted("batch", "v1", "jobs", json!({"spec": {"parallelism": 3}}));
    assert!(parallel["spec"].get("completions").is_none());
    let cj = defaulted(
        "batch",
        "v1",
        "cronjobs",
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {}}}}}}),
    );
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    assert_eq!(cj["spec"]["suspend"], false);
    assert!(cj["spec"]["jobTemplate"]["spec"].get("backoffLimit").is_none());
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
}

#[test]
fn services() {
    let svc = defaulted(
        "",
        "v1",
        "services",
        json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}),
    );
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    assert_eq!(svc["spec"]["internalTrafficPolicy"], "Cluster");
    assert!(svc["spec"].get("externalTrafficPolicy").is_none());
    assert_eq!(
        svc["spec"]["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(svc["spec"]["ports"][1]["targetPort"], "dns");
    let lb = defaulted(
        "",
        "v1",
        "services",
        json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP"}}),
    );
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(
        lb["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        10800
    );
    let external = defaulted("", "v1", "services", json!({"spec": {"type": "ExternalName"}}));
    assert!(external["spec"].get("internalTrafficPolicy").is_none());
}

#[test]
fn smaller_kinds() {
    assert_eq!(defaulted("", "v1", "secrets", json!({}))["type"], "Opaque");
    let secret = defaulted(
        "",
        "v1",
        "secrets",
        json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "hi"}}),
    );
    assert_eq!(secret["data"], json!({"a": "eA==", "b": "aGk="}));
    assert!(secret.get("stringData").is_none());
    let ns = defaulted("", "v1", "namespaces", json!({"metadata": {"name": "x"}}));
    assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "x");
    let sc = defaulted("storage.k8s.io", "v1", "storageclasses", json!({}));
    assert_eq!(
        (sc["reclaimPolicy"].as_str(), sc["volumeBindingMode"].as_str()),
        (Some("Delete"), Some("Immediate"))
    );
    let pc = defaulted("scheduling.k8s.io", "v1", "priorityclasses", json!({"value": 1}));
    assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
    let np = defaulted(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        json!({"spec": {"egress": [{"ports": [{"port": 53}]}]}}),
    );
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
    let rb = defaulted(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}]}),
    );
    assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert!(rb["subjects"][1].get("apiGroup").is_none());
    let hpa = defaulted(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        json!({"spec": {"maxReplicas": 3}}),
    );
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    let pvc = defaulted("", "v1", "persistentvolumeclaims", json!({"spec": {}}));
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    // Wrongly typed input is left for validation, never a panic.
    let odd = defaulted("apps", "v1", "deployments", json!({"spec": "nonsense"}));
    assert_eq!(odd["spec"], "nonsense");
    let odd = defaulted(
        "",
        "v1",
        "pods",
        json!({"spec": {"containers": "x", "volumes": [1]}}),
    );
    assert_eq!(odd["spec"]["containers"], "x");
}

#[test]
fn singular_ip_and_cidr_fields_stay_in_step_with_their_plurals() {
    let pod = |status| defaulted("", "v1", "pods", json!({"spec": {}, "status": status}));
    // A kubelet of old writes only the singular; the plural follows it.
    let p = pod(json!({"podIP": "10.42.0.5", "hostIP": "172.31.0.1"}));
    assert_eq!(p["status"]["podIPs"], json!([{"ip": "10.42.0.5"}]));
    assert_eq!(p["status"]["hostIPs"], json!([{"ip": "172.31.0.1"}]));
    // Only the plural: the singular is its first item.
    let p = pod(json!({"podIPs": [{"ip": "10.42.0.5"}, {"ip": "fd00::5"}]}));
    assert_eq!(p["status"]["podIP"], "10.42.0.5");
    assert_eq!(p["status"]["podIPs"][1]["ip"], "fd00::5");
    // Both, differing: the singular is authoritative.
    let p = pod(json!({"podIP": "10.42.0.9", "podIPs": [{"ip": "10.42.0.5"}]}));
    assert_eq!(p["status"]["podIPs"], json!([{"ip": "10.42.0.9"}]));
    // Neither: nothing appears.
    let p = pod(json!({"phase": "Pending"}));
    assert!(p["status"].get("podIP").is_none() && p["status"].get("podIPs").is_none());
    let node = defaulted("", "v1", "nodes", json!({"spec": {"podCIDR": "10.42.1.0/24"}}));
    assert_eq!(node["spec"]["podCIDRs"], json!(["10.42.1.0/24"]));
    let node = defaulted(
        "",
        "v1",
        "nodes",
        json!({"spec": {"podCIDRs": ["10.42.1.0/24", "fd00:1::/64"]}}),
    );
    assert_eq!(node["spec"]["podCIDR"], "10.42.1.0/24");
}
