//! configMap, secret, downwardAPI and projected volumes and the environment of real pods (runc
//! containers run by `rkube server`'s agent, driven by kubectl): what the container reads, a
//! ConfigMap edit reaching a running container, and a missing ConfigMap holding the pod in
//! ContainerCreating with kubelet's FailedMount event until it exists.

mod common;

use std::time::Duration;

use common::pods::{NODE_IP, PodCluster};

const READER: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: reader
  labels: {app: reader}
spec:
  restartPolicy: Never
  volumes:
  - {name: cfg, configMap: {name: cfg}}
  - {name: sec, secret: {secretName: sec, defaultMode: 0400}}
  - name: info
    downwardAPI:
      items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
  containers:
  - name: c
    image: busybox
    env:
    - {name: FROM_CM, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: sec, key: password}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: BOTH, value: "$(FROM_CM)-$(POD_NAME)"}
    envFrom: [{prefix: CM_, configMapRef: {name: cfg}}, {configMapRef: {name: cfg}}]
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
    - {name: sec, mountPath: /sec}
    - {name: info, mountPath: /info}
    command:
    - sh
    - -c
    - |
      {
        echo "cfg=$(cat /cfg/greeting) sec=$(cat /sec/password) labels=$(cat /info/labels)"
        echo "env=$FROM_CM $PASSWORD $POD_NAME $HOST_IP $BOTH $CM_greeting"
        echo "svc=$KUBERNETES_SERVICE_PORT"
        echo "ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)"
        grep -c BEGIN /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
        touch /cfg/x 2>/dev/null && echo writable || echo read-only
        cat /var/run/secrets/kubernetes.io/serviceaccount/token
      } > /dev/termination-log
"#;

#[test]
fn pods_read_config_maps_secrets_downward_api_and_their_token() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=greeting=hello",
        "--from-literal=1bad=x",
    ]);
    s.ok(&[
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=password=hunter2",
    ]);
    cluster.wait_for("the default ServiceAccount", Duration::from_secs(20), || {
        s.kubectl(&["get", "sa", "default"]).status.success()
    });
    s.create("reader.yaml", READER);
    cluster.wait_phase("reader", "Succeeded", Duration::from_secs(60));
    let message = cluster.pod_field(
        "reader",
        "{.status.containerStatuses[0].state.terminated.message}",
    );
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(
        lines[0], "cfg=hello sec=hunter2 labels=app=\"reader\"",
        "{message}"
    );
    assert_eq!(
        lines[1],
        format!("env=hello hunter2 reader {NODE_IP} hello-reader hello")
    );
    assert_eq!(lines[2], "svc=443");
    assert_eq!(lines[3], "ns=default");
    assert_eq!(lines[4], "1");
    assert_eq!(lines[5], "read-only");
    // The projected token is one the API server takes as the pod's service account.
    let review = s.manifest(
        "review.yaml",
        &format!(
            "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {}\n",
            lines[6]
        ),
    );
    let answer: serde_json::Value =
        serde_json::from_str(&s.ok(&["create", "-f", &review, "-o", "json"])).unwrap();
    assert_eq!(
        answer["status"]["user"]["username"], "system:serviceaccount:default:default",
        "{answer}"
    );
    assert_eq!(
        answer["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"][0],
        "reader"
    );
    // `1bad` is no variable name: skipped, with kubelet's event.
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=reader,reason=InvalidEnvironmentVariableNames",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains(
            "Keys [1bad] from the EnvFrom configMap default/cfg were skipped since they are considered invalid environment variable names."
        ),
        "{events}"
    );
}

#[test]
fn a_config_map_edit_reaches_a_running_container() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.ok(&["create", "configmap", "live", "--from-literal=mode=old"]);
    s.create(
        "watcher.yaml",
        "apiVersion: v1
kind: Pod
metadata: {name: watcher}
spec:
  restartPolicy: Never
  volumes: [{name: live, configMap: {name: live}}]
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'until grep -q new /live/mode; do sleep 0.2; done; cat /live/mode > /dev/termination-log']
    volumeMounts: [{name: live, mountPath: /live}]
",
    );
    cluster.wait_phase("watcher", "Running", Duration::from_secs(60));
    s.ok(&["patch", "configmap", "live", "-p", r#"{"data":{"mode":"new"}}"#]);
    cluster.wait_phase("watcher", "Succeeded", Duration::from_secs(15));
    assert_eq!(
        cluster.pod_field(
            "watcher",
            "{.status.containerStatuses[0].state.terminated.message}"
        ),
        "new"
    );
}

#[test]
fn a_missing_config_map_holds_the_pod_in_container_creating() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.create(
        "waiting.yaml",
        "apiVersion: v1
kind: Pod
metadata: {name: waiting}
spec:
  volumes: [{name: cfg, configMap: {name: later}}]
  containers:
  - name: c
    image: busybox
    command: [sleep, '3600']
    volumeMounts: [{name: cfg, mountPath: /cfg}]
",
    );
    cluster.wait_for("the FailedMount event", Duration::from_secs(30), || {
        let events = s.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=waiting,reason=FailedMount",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        events.contains("MountVolume.SetUp failed for volume \"cfg\" : configmap \"later\" not found")
    });
    assert_eq!(
        cluster.pod_field("waiting", "{.status.containerStatuses[0].state.waiting.reason}"),
        "ContainerCreating"
    );
    s.ok(&["create", "configmap", "later", "--from-literal=a=b"]);
    cluster.wait_phase("waiting", "Running", Duration::from_secs(60));
}

#[test]
fn downward_api_labels_follow_the_pod() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.create(
        "labelled.yaml",
        "apiVersion: v1
kind: Pod
metadata: {name: labelled, labels: {stage: one}}
spec:
  restartPolicy: Never
  volumes:
  - name: info
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'until grep -q two /info/labels; do sleep 0.2; done; cat /info/labels > /dev/termination-log']
    volumeMounts: [{name: info, mountPath: /info}]
",
    );
    cluster.wait_phase("labelled", "Running", Duration::from_secs(60));
    s.ok(&["label", "pod", "labelled", "stage=two", "--overwrite"]);
    cluster.wait_phase("labelled", "Succeeded", Duration::from_secs(15));
    assert_eq!(
        cluster.pod_field(
            "labelled",
            "{.status.containerStatuses[0].state.terminated.message}"
        ),
        "stage=\"two\""
    );
}
