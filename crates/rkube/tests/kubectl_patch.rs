//! Strategic merge patch end to end: real kubectl (`apply`, `patch`, `set image`, `rollout
//! restart`, `label`, `annotate`) against a real `rkube server`, which must merge as upstream.

mod common;

use serde_json::{Value, json};

use common::Server;

/// `kubectl apply` of a manifest (validated strictly by the server, kubectl's default); returns
/// stdout.
fn apply(server: &Server, yaml: &str) -> String {
    server.client().apply("manifest.yaml", yaml, &[])
}

fn get(server: &Server, what: &str) -> Value {
    serde_json::from_str(&server.ok(&["get", what, "-o", "json"])).unwrap()
}

const FIRST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web, tier: front}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: a
        image: nginx:1
        env: [{name: "X", value: "1"}, {name: "Y", value: "2"}]
        ports: [{containerPort: 80, name: http}]
      - name: b
        image: busybox
"#;

/// FIRST with container b removed and c added in front, env Y removed, the port changed, label
/// tier removed and the strategy switched to Recreate (kubectl sends `$retainKeys` for it).
const SECOND: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  strategy:
    type: Recreate
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: redis
      - name: a
        image: nginx:1
        env: [{name: "X", value: "1"}]
        ports: [{containerPort: 8080, name: http}]
"#;

/// The containers of a deployment without the fields the server defaults (imagePullPolicy,
/// resources, termination message settings, port protocols), which the patches never touch.
fn containers(deployment: &Value) -> Value {
    let mut containers = deployment["spec"]["template"]["spec"]["containers"].clone();
    for c in containers.as_array_mut().into_iter().flatten() {
        let c = c.as_object_mut().unwrap();
        for defaulted in [
            "imagePullPolicy",
            "resources",
            "terminationMessagePath",
            "terminationMessagePolicy",
        ] {
            c.remove(defaulted);
        }
        for port in c
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            port.as_object_mut().unwrap().remove("protocol");
        }
    }
    containers
}

#[test]
fn kubectl_apply_reapplies_changes_as_upstream_merges_them() {
    let server = Server::start();
    assert_eq!(apply(&server, FIRST), "deployment.apps/web created\n");
    assert_eq!(apply(&server, SECOND), "deployment.apps/web configured\n");
    let web = get(&server, "deploy/web");
    assert_eq!(
        containers(&web),
        json!([
            {"name": "c", "image": "redis"},
            {"name": "a", "image": "nginx:1", "env": [{"name": "X", "value": "1"}],
             "ports": [{"containerPort": 8080, "name": "http"}]},
        ])
    );
    assert_eq!(web["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(web["spec"]["strategy"], json!({"type": "Recreate"}));
    let text = web.to_string();
    assert!(
        !text.contains("$setElementOrder") && !text.contains("$retainKeys"),
        "{text}"
    );

    // The same file again changes nothing: no write, same resourceVersion.
    let version = web["metadata"]["resourceVersion"].clone();
    assert_eq!(apply(&server, SECOND), "deployment.apps/web unchanged\n");
    assert_eq!(get(&server, "deploy/web")["metadata"]["resourceVersion"], version);
}

#[test]
fn kubectl_patch_set_image_rollout_restart_merge_by_name() {
    let server = Server::start();
    apply(&server, FIRST);
    let patch = r#"{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"b"}]}}}}"#;
    assert_eq!(
        server.ok(&["patch", "deploy", "web", "-p", patch]),
        "deployment.apps/web patched\n"
    );
    let web = get(&server, "deploy/web");
    assert_eq!(containers(&web)[0]["image"], "b");
    assert_eq!(containers(&web)[0]["env"].as_array().unwrap().len(), 2);
    assert_eq!(containers(&web)[1], json!({"name": "b", "image": "busybox"}));

    server.ok(&["set", "image", "deploy/web", "b=busybox:2"]);
    server.ok(&["rollout", "restart", "deploy/web"]);
    let web = get(&server, "deploy/web");
    assert_eq!(containers(&web)[1]["image"], "busybox:2");
    assert_eq!(containers(&web)[0]["image"], "b");
    let annotations = &web["spec"]["template"]["metadata"]["annotations"];
    assert!(annotations["kubectl.kubernetes.io/restartedAt"].is_string());

    let delete = r#"{"spec":{"template":{"spec":{"containers":[{"name":"b","$patch":"delete"}]}}}}"#;
    server.ok(&["patch", "deploy", "web", "-p", delete]);
    let web = get(&server, "deploy/web");
    assert_eq!(containers(&web).as_array().unwrap().len(), 1);
    assert_eq!(containers(&web)[0]["name"], "a");

    // kubectl edit sends the difference as a strategic merge patch.
    let edit = server.kubectl_with_editor(
        &["edit", "deploy/web"],
        "sed -i s/image:.b$/&2/", // `image: b` → `image: b2`
    );
    let stderr = String::from_utf8_lossy(&edit.stderr);
    assert!(edit.status.success(), "kubectl edit: {stderr}");
    assert_eq!(containers(&get(&server, "deploy/web"))[0]["image"], "b2");

    server.ok(&["label", "deploy", "web", "tier-", "l=1"]);
    server.ok(&["annotate", "deploy", "web", "note=x"]);
    let web = get(&server, "deploy/web");
    assert_eq!(web["metadata"]["labels"], json!({"app": "web", "l": "1"}));
    assert_eq!(web["metadata"]["annotations"]["note"], "x");
}

#[test]
fn strategic_merge_patch_errors_read_as_upstream() {
    let server = Server::start();
    apply(&server, FIRST);
    let no_key = r#"{"spec":{"template":{"spec":{"containers":[{"image":"b"}]}}}}"#;
    assert_eq!(
        server.fails(&["patch", "deploy", "web", "-p", no_key]),
        "Error from server: map: map[image:b] does not contain declared merge key: name\n"
    );
    let bad_retain = r#"{"spec":{"strategy":{"$retainKeys":"type"}}}"#;
    assert_eq!(
        server.fails(&["patch", "deploy", "web", "-p", bad_retain]),
        "Error from server (BadRequest): invalid patch format of retainKeys\n"
    );
}

/// A uid in a patch guards it (controllers adopt and release that way): a different uid is
/// refused as an immutable field; the same uid applies.
#[test]
fn a_uid_in_a_patch_must_match_the_object() {
    let server = Server::start();
    server.ok(&["create", "configmap", "guarded", "--from-literal=a=1"]);
    let uid = server.ok(&["get", "configmap", "guarded", "-o", "jsonpath={.metadata.uid}"]);
    let other = r#"{"metadata":{"uid":"00000000-0000-0000-0000-000000000000","labels":{"x":"y"}}}"#;
    let err = server.fails(&["patch", "configmap", "guarded", "--type=merge", "-p", other]);
    assert!(
        err.contains(
            r#"metadata.uid: Invalid value: "00000000-0000-0000-0000-000000000000": field is immutable"#
        ),
        "{err}"
    );
    let same = format!(r#"{{"metadata":{{"uid":"{uid}","labels":{{"x":"y"}}}}}}"#);
    server.ok(&["patch", "configmap", "guarded", "--type=merge", "-p", &same]);
    assert_eq!(
        server.ok(&[
            "get",
            "configmap",
            "guarded",
            "-o",
            "jsonpath={.metadata.labels.x}"
        ]),
        "y"
    );
}
