use apimachinery::resources::find;
use serde_json::{Value, json};

use super::validate;

/// The error message of validating `obj` as a new object (empty when valid).
fn message(group: &str, plural: &str, obj: Value) -> String {
    let version = if group == "autoscaling" { "v2" } else { "v1" };
    let def = find(group, version, plural).unwrap();
    let mut obj = obj;
    crate::defaults::apply(def, &mut obj);
    validate(def, &obj, None)
        .err()
        .map(|e| e.message)
        .unwrap_or_default()
}

fn update_message(group: &str, plural: &str, old: Value, new: Value) -> String {
    let def = find(group, "v1", plural).unwrap();
    let (mut old, mut new) = (old, new);
    crate::defaults::apply(def, &mut old);
    crate::defaults::apply(def, &mut new);
    validate(def, &new, Some(&old))
        .err()
        .map(|e| e.message)
        .unwrap_or_default()
}

fn deployment(selector: Value, labels: Value) -> Value {
    json!({"metadata": {"name": "web"}, "spec": {"selector": selector, "template": {
        "metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

#[test]
fn names_follow_the_kind_rule() {
    assert_eq!(
        message("", "configmaps", json!({"metadata": {"name": "a.b-c"}})),
        ""
    );
    let err = message("", "configmaps", json!({"metadata": {"name": "Bad_Name"}}));
    assert!(err.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{err}");
    assert_ne!(
        message("", "namespaces", json!({"metadata": {"name": "a.b"}})),
        ""
    );
    let role = |name: &str| json!({"metadata": {"name": name}, "rules": []});
    assert_eq!(
        message(
            "rbac.authorization.k8s.io",
            "clusterroles",
            role("system:controller:x")
        ),
        ""
    );
    assert_eq!(
        message("rbac.authorization.k8s.io", "clusterroles", role("a/b")),
        "ClusterRole.rbac.authorization.k8s.io \"a/b\" is invalid: metadata.name: Invalid value: \"a/b\": may not contain '/'"
    );
    let svc = json!({"metadata": {"name": "1abc"}, "spec": {"ports": [{"port": 80}]}});
    assert!(message("", "services", svc).contains("a DNS-1035 label"));
}

#[test]
fn labels_and_annotations() {
    let err = message(
        "",
        "configmaps",
        json!({"metadata": {"name": "x", "labels": {"bad key": "v", "k": "bad value!"}}}),
    );
    assert!(
        err.contains(
            "metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters"
        ),
        "{err}"
    );
    assert!(
        err.contains("metadata.labels: Invalid value: \"bad value!\": a valid label must be an empty string"),
        "{err}"
    );
    let err = message(
        "",
        "configmaps",
        json!({"metadata": {"name": "x", "annotations": {"a/b/c": "v"}}}),
    );
    assert!(
        err.contains("metadata.annotations: Invalid value: \"a/b/c\""),
        "{err}"
    );
}

#[test]
fn pods_need_named_containers_with_images_and_valid_ports() {
    let err = message(
        "",
        "pods",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "ports": [{"containerPort": 70000, "protocol": "XTP"}]},
            {"name": "a", "image": "x", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}}),
    );
    assert_eq!(
        err,
        "Pod \"p\" is invalid: [spec.containers[0].image: Required value, spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive, spec.containers[0].ports[0].protocol: Unsupported value: \"XTP\": supported values: \"SCTP\", \"TCP\", \"UDP\", spec.containers[1].name: Duplicate value: \"a\", spec.containers[1].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1]"
    );
    let err = message("", "pods", json!({"metadata": {"name": "p"}, "spec": {}}));
    assert_eq!(err, "Pod \"p\" is invalid: spec.containers: Required value");
    let err = message(
        "",
        "pods",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}]}}),
    );
    assert_eq!(
        err,
        "Pod \"p\" is invalid: spec.containers[0].volumeMounts[0].name: Not found: \"v\""
    );
}

#[test]
fn pod_specs_are_fixed_but_for_images() {
    let old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:1"}]}});
    let image = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:2"}]}});
    assert_eq!(update_message("", "pods", old.clone(), image), "");
    let env = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:1", "env": [{"name": "A", "value": "1"}]}]}});
    let err = update_message("", "pods", old, env);
    assert!(err.starts_with("Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"), "{err}");
}

#[test]
fn deployments_select_their_template() {
    assert_eq!(
        message(
            "apps",
            "deployments",
            deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}))
        ),
        ""
    );
    let err = message(
        "apps",
        "deployments",
        deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "other"})),
    );
    assert_eq!(
        err,
        "Deployment.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"
    );
    let err = message(
        "apps",
        "deployments",
        deployment(Value::Null, json!({"app": "web"})),
    );
    assert_eq!(
        err,
        "Deployment.apps \"web\" is invalid: spec.selector: Required value"
    );
    let err = message(
        "apps",
        "deployments",
        deployment(json!({}), json!({"app": "web"})),
    );
    assert!(err.contains("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"), "{err}");
    let err = update_message(
        "apps",
        "deployments",
        deployment(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web", "v": "2"}),
        ),
        deployment(
            json!({"matchLabels": {"app": "web", "v": "2"}}),
            json!({"app": "web", "v": "2"}),
        ),
    );
    assert_eq!(
        err,
        "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    );
    let mut bad = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}));
    bad["spec"]["replicas"] = json!(-1);
    bad["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    let err = message("apps", "deployments", bad);
    assert_eq!(
        err,
        "Deployment.apps \"web\" is invalid: [spec.replicas: Invalid value: -1: must be greater than or equal to 0, spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"]"
    );
}

#[test]
fn jobs_restart_on_failure_or_never() {
    let job = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    let err = message("batch", "jobs", job);
    assert_eq!(
        err,
        "Job.batch \"j\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
    );
    let cron = json!({"metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}}});
    assert_eq!(
        message("batch", "cronjobs", cron),
        "CronJob.batch \"c\" is invalid: spec.schedule: Required value"
    );
}

#[test]
fn services_need_ports_named_when_several() {
    let svc = |ports: Value| json!({"metadata": {"name": "s"}, "spec": {"ports": ports}});
    assert_eq!(
        message("", "services", svc(json!([]))),
        "Service \"s\" is invalid: spec.ports: Required value"
    );
    let err = message(
        "",
        "services",
        svc(json!([{"port": 80}, {"port": 0, "name": "b"}])),
    );
    assert_eq!(
        err,
        "Service \"s\" is invalid: [spec.ports[0].name: Required value, spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[1].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive]"
    );
    let err = message("", "services", svc(json!([{"port": 80, "nodePort": 30001}])));
    assert_eq!(
        err,
        "Service \"s\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    );
    let twice = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [
        {"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080},
        {"name": "c", "port": 80, "protocol": "UDP", "nodePort": 30080}]}});
    assert_eq!(
        message("", "services", twice),
        "Service \"s\" is invalid: spec.ports[1].nodePort: Duplicate value: 30080"
    );
    let external = json!({"metadata": {"name": "s"}, "spec": {"type": "ExternalName"}});
    assert_eq!(
        message("", "services", external),
        "Service \"s\" is invalid: spec.externalName: Required value"
    );
}

#[test]
fn config_keys_and_secret_types() {
    let err = message(
        "",
        "configmaps",
        json!({"metadata": {"name": "c"}, "data": {"bad key": "v"}}),
    );
    assert_eq!(
        err,
        "ConfigMap \"c\" is invalid: data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    );
    let err = message(
        "",
        "secrets",
        json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}),
    );
    assert_eq!(err, "Secret \"s\" is invalid: data[tls.key]: Required value");
    let err = update_message(
        "",
        "configmaps",
        json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}}),
        json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "2"}}),
    );
    assert_eq!(
        err,
        "ConfigMap \"c\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
}

#[test]
fn rbac_claims_autoscalers_and_classes() {
    let binding = |role: &str| {
        json!({"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "r"}]})
    };
    let err = message("rbac.authorization.k8s.io", "rolebindings", binding("r"));
    assert_eq!(
        err,
        "RoleBinding.rbac.authorization.k8s.io \"b\" is invalid: subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\""
    );
    let mut old = binding("r");
    old["subjects"] = json!([]);
    let mut new = binding("other");
    new["subjects"] = json!([]);
    let err = update_message("rbac.authorization.k8s.io", "rolebindings", old, new);
    assert_eq!(
        err,
        "RoleBinding.rbac.authorization.k8s.io \"b\" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"other\"}: cannot change roleRef"
    );
    let role = json!({"metadata": {"name": "r"}, "rules": [{"resources": ["pods"]}]});
    assert_eq!(
        message("rbac.authorization.k8s.io", "roles", role),
        "Role.rbac.authorization.k8s.io \"r\" is invalid: [rules[0].verbs: Required value: verbs must contain at least one value, rules[0].apiGroups: Required value: resource rules must supply at least one api group]"
    );
    assert_eq!(
        message(
            "",
            "persistentvolumeclaims",
            json!({"metadata": {"name": "c"}, "spec": {}})
        ),
        "PersistentVolumeClaim \"c\" is invalid: [spec.accessModes: Required value: at least 1 access mode is required, spec.resources[storage]: Required value]"
    );
    let hpa = json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "minReplicas": 3, "maxReplicas": 2}});
    assert_eq!(
        message("autoscaling", "horizontalpodautoscalers", hpa),
        "HorizontalPodAutoscaler.autoscaling \"h\" is invalid: spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"
    );
    let class = |value: i64| json!({"metadata": {"name": "high"}, "value": value});
    assert_eq!(message("scheduling.k8s.io", "priorityclasses", class(10)), "");
    assert_eq!(
        update_message("scheduling.k8s.io", "priorityclasses", class(10), class(11)),
        "PriorityClass.scheduling.k8s.io \"high\" is invalid: value: Forbidden: may not be changed in an update."
    );
    assert_eq!(
        message(
            "storage.k8s.io",
            "storageclasses",
            json!({"metadata": {"name": "s"}})
        ),
        "StorageClass.storage.k8s.io \"s\" is invalid: provisioner: Required value"
    );
}

/// Every kind's defaults, strategy and validation take any JSON shape without panicking.
#[test]
fn odd_shapes_never_panic() {
    let weird = [
        json!({"metadata": {"name": "x", "labels": 1, "annotations": [1]}, "spec": "x", "status": 3}),
        json!({"metadata": {"name": "x"}, "spec": {"template": "t", "selector": 1, "ports": [1, "a", null],
            "containers": {"a": 1}, "volumes": [null], "jobTemplate": 1, "strategy": "s", "updateStrategy": [],
            "volumeClaimTemplates": [1], "type": 5, "clusterIP": 7, "resources": "r"}}),
        json!({"metadata": {"name": "x"}, "spec": {"template": {"metadata": 1, "spec": {"containers": [1, {"name": 2,
            "ports": [{"containerPort": "x"}], "resources": {"limits": 1, "requests": {"cpu": []}},
            "env": [{"valueFrom": 1}], "livenessProbe": 1}], "volumes": [{"name": "v", "secret": 1}]}}}}),
        json!({"metadata": {"name": "x"}, "data": 1, "stringData": {"a": 1}, "rules": [1], "subjects": 1,
            "roleRef": "r", "template": [], "subsets": [{"ports": 1}], "ports": [1], "value": "v"}),
        json!([]),
        json!({}),
    ];
    for def in apimachinery::resources::BUILTIN
        .iter()
        .filter(|d| !d.storage.is_empty())
    {
        for obj in &weird {
            let mut obj = obj.clone();
            crate::defaults::apply(def, &mut obj);
            if !obj.is_object() {
                continue;
            }
            crate::strategy::prepare_for_create(def, &mut obj);
            let _ = validate(def, &obj, None);
            let old = obj.clone();
            crate::strategy::prepare_for_update(def, &old, &mut obj);
            let _ = validate(def, &obj, Some(&old));
        }
    }
}

#[test]
fn ingresses_and_disruption_budgets() {
    let ingress = |path: Value| {
        json!({"metadata": {"name": "i"}, "spec": {"rules": [{"host": "example.com",
        "http": {"paths": [path]}}]}})
    };
    let ok = json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}});
    assert_eq!(message("networking.k8s.io", "ingresses", ingress(ok)), "");
    let bad = json!({"path": "api", "backend": {"service": {"name": "web", "port": {}}}});
    assert_eq!(
        message("networking.k8s.io", "ingresses", ingress(bad)),
        "Ingress.networking.k8s.io \"i\" is invalid: [spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified, spec.rules[0].http.paths[0].backend.service.port: Invalid value: networking.ServiceBackendPort{Name:\"\", Number:0}: port name or number is required]"
    );
    let pdb = |spec: Value| json!({"metadata": {"name": "b"}, "spec": spec});
    assert_eq!(
        message(
            "policy",
            "poddisruptionbudgets",
            pdb(json!({"minAvailable": "50%"}))
        ),
        ""
    );
    assert_eq!(
        message(
            "policy",
            "poddisruptionbudgets",
            pdb(json!({"maxUnavailable": "150%"}))
        ),
        "PodDisruptionBudget.policy \"b\" is invalid: spec.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%"
    );
}

#[test]
fn finalizers_and_owner_references() {
    let cm = |meta: Value| json!({"metadata": meta});
    assert_eq!(
        message(
            "",
            "configmaps",
            cm(json!({"name": "c", "finalizers": ["kubernetes", "example.com/x", "mine"]}))
        ),
        "ConfigMap \"c\" is invalid: metadata.finalizers: Invalid value: \"mine\": name is neither a standard finalizer name nor is it fully qualified"
    );
    let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": ""});
    assert_eq!(
        message(
            "",
            "configmaps",
            cm(json!({"name": "c", "ownerReferences": [owner]}))
        ),
        "ConfigMap \"c\" is invalid: metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty"
    );
}
