//! Real kubectl against a real `rkube server` (child process, free loopback port, SQLite in a
//! temporary data dir): the API server's first slice, end to end.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

// kubectl ≥ 1.32 sends its generators' objects (`kubectl create namespace …`) as protobuf; files
// (`create -f`) go as JSON, with `fieldValidation=Strict` once kubectl found the parameter in
// /openapi/v3.

#[test]
fn kubectl_generators_send_protobuf() {
    let server = Server::start();
    server.ok(&["create", "namespace", "gen"]);
    server.ok(&[
        "create",
        "configmap",
        "cm",
        "-n",
        "gen",
        "--from-literal=a=b",
        "--from-literal=c=d",
    ]);
    server.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "gen",
        "--from-literal=password=hunter2",
    ]);
    server.ok(&[
        "create",
        "quota",
        "q",
        "-n",
        "gen",
        "--hard=pods=10,limits.memory=2Gi",
    ]);
    server.ok(&[
        "create",
        "priorityclass",
        "low",
        "--value=-5",
        "--description=low prio",
    ]);
    assert_eq!(
        server.ok(&["get", "ns", "gen", "-o", "jsonpath={.status.phase}"]),
        "Active"
    );
    assert_eq!(
        server.ok(&[
            "get",
            "cm",
            "cm",
            "-n",
            "gen",
            "-o",
            "jsonpath={.data.a}{.data.c}"
        ]),
        "bd"
    );
    // Secret data is bytes: base64 in JSON, exactly as sent.
    assert_eq!(
        server.ok(&[
            "get",
            "secret",
            "s",
            "-n",
            "gen",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "aHVudGVyMg=="
    );
    assert_eq!(
        server.ok(&[
            "get",
            "quota",
            "q",
            "-n",
            "gen",
            "-o",
            "jsonpath={.spec.hard.pods}"
        ]),
        "10"
    );
    assert_eq!(
        server.ok(&["get", "priorityclass", "low", "-o", "jsonpath={.value}"]),
        "-5"
    );
    // Reviews are answered from the caller's identity (protobuf from kubectl 1.33).
    let whoami = server.ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("system:admin") && whoami.contains("[system:masters system:authenticated]"),
        "{whoami}"
    );
    assert_eq!(
        server
            .ok(&["auth", "can-i", "create", "deployments", "-n", "gen"])
            .trim(),
        "yes"
    );
    // kubectl 1.29 sends JSON: the same answer.
    let old = server.with(KUBECTL_1_29).ok(&["auth", "whoami"]);
    assert!(old.contains("system:admin"), "{old}");
    // Generators of kinds with nested structs, int-or-strings and embedded Go structs.
    server.ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "gen",
        "--image=nginx:1.27",
        "--replicas=3",
        "--port=80",
    ]);
    server.ok(&["create", "serviceaccount", "sa", "-n", "gen"]);
    server.ok(&[
        "create",
        "service",
        "clusterip",
        "svc",
        "-n",
        "gen",
        "--tcp=80:8080",
    ]);
    server.ok(&[
        "create",
        "job",
        "j",
        "-n",
        "gen",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ]);
    server.ok(&[
        "create",
        "role",
        "r",
        "-n",
        "gen",
        "--verb=get",
        "--resource=pods",
    ]);
    server.ok(&[
        "create",
        "rolebinding",
        "rb",
        "-n",
        "gen",
        "--role=r",
        "--serviceaccount=gen:sa",
    ]);
    let deployment = "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort} {.spec.selector.matchLabels.app}";
    assert_eq!(
        server.ok(&["get", "deploy", "web", "-n", "gen", "-o", deployment]),
        "3 nginx:1.27 80 web"
    );
    let service = "jsonpath={.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.type}";
    assert_eq!(
        server.ok(&["get", "svc", "svc", "-n", "gen", "-o", service]),
        "80 8080 ClusterIP"
    );
    let job = "jsonpath={.spec.template.spec.containers[0].command}";
    assert_eq!(
        server.ok(&["get", "job", "j", "-n", "gen", "-o", job]),
        "[\"echo\",\"hi\"]"
    );
    let binding = "jsonpath={.roleRef.name} {.subjects[0].kind} {.subjects[0].namespace}";
    assert_eq!(
        server.ok(&["get", "rolebinding", "rb", "-n", "gen", "-o", binding]),
        "r ServiceAccount gen"
    );
}

#[test]
fn kubectl_drives_configmaps_and_namespaces() {
    let server = Server::start();
    let version = server.ok(&["version", "-o", "json"]);
    assert!(version.contains("\"minor\": \"33\""), "{version}");

    let first = namespace_with_configmap("demo", "cm1", "greeting: hello");
    let created = server.create("first.yaml", &first);
    assert_eq!(created, "namespace/demo created\nconfigmap/cm1 created\n");
    let cm = server.ok(&[
        "get",
        "configmap",
        "cm1",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.greeting} {.metadata.uid}",
    ]);
    assert!(cm.starts_with("hello "), "{cm}");
    assert!(cm.len() > "hello ".len(), "uid set: {cm}");

    // Server-side printing: upstream's per-kind columns.
    let table = words(&server.ok(&["get", "configmaps", "-n", "demo"]));
    assert_eq!(table[0], ["NAME", "DATA", "AGE"], "{table:?}");
    assert_eq!(table[1][..2], ["cm1", "1"], "{table:?}");
    server.create(
        "three.yaml",
        &configmap("demo", "three", "a: '1'\n  b: '2'\n  c: '3'"),
    );
    let three = words(&server.ok(&["get", "configmap", "three", "-n", "demo"]));
    assert_eq!(three[0], ["NAME", "DATA", "AGE"], "{three:?}");
    assert_eq!(three[1][..2], ["three", "3"], "{three:?}");
    assert!(is_age(&three[1][2]), "{three:?}");
    let namespaces = words(&server.ok(&["get", "namespaces"]));
    assert_eq!(namespaces[0], ["NAME", "STATUS", "AGE"], "{namespaces:?}");
    let demo = namespaces
        .iter()
        .find(|row| row[0] == "demo")
        .expect("demo listed");
    assert_eq!(demo[1], "Active", "{namespaces:?}");
    assert!(is_age(&demo[2]), "{namespaces:?}");

    server.ok(&["label", "configmap", "cm1", "-n", "demo", "tier=web"]);
    assert_eq!(
        server
            .ok(&["get", "cm", "-n", "demo", "-l", "tier=web", "-o", "name"])
            .trim(),
        "configmap/cm1"
    );
    assert_eq!(
        server
            .ok(&["get", "cm", "-n", "demo", "-l", "tier=db", "-o", "name"])
            .trim(),
        ""
    );
    let by_name = server.ok(&[
        "get",
        "cm",
        "-n",
        "demo",
        "--field-selector",
        "metadata.name=cm1",
        "-o",
        "name",
    ]);
    assert_eq!(by_name.trim(), "configmap/cm1");

    // Pagination: kubectl lists in chunks and follows continue tokens.
    let pages: String = (0..7)
        .map(|i| configmap("demo", &format!("page-{i}"), "k: v"))
        .collect();
    server.create("pages.yaml", &pages);
    let names = server.ok(&["get", "cm", "-n", "demo", "--chunk-size", "2", "-o", "name"]);
    assert_eq!(names.lines().count(), 9, "{names}");

    let missing = server.fails(&["get", "configmap", "nope", "-n", "demo"]);
    assert!(
        missing.contains("Error from server (NotFound): configmaps \"nope\" not found"),
        "{missing}"
    );
    let dup = server.create_fails("dup.yaml", &configmap("demo", "cm1", "a: b"));
    assert!(
        dup.contains("Error from server (AlreadyExists)")
            && dup.contains("configmaps \"cm1\" already exists"),
        "{dup}"
    );
    let bad = configmap("demo", "Bad_Name", "a: b");
    let invalid = server.create_fails("bad.yaml", &bad);
    assert!(
        invalid.contains("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""),
        "{invalid}"
    );

    server.ok(&["delete", "configmap", "cm1", "-n", "demo"]);
    server.fails(&["get", "configmap", "cm1", "-n", "demo"]);

    let namespaces = server.ok(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "demo", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(namespaces.contains(&format!("namespace/{ns}\n")), "{namespaces}");
    }
    let phase = server.ok(&["get", "namespace", "demo", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Active");

    let resources = server.ok(&["api-resources"]);
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("pods") && l.contains(" po ")),
        "{resources}"
    );
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("deployments") && l.contains("apps/v1")),
        "{resources}"
    );
}

#[test]
fn watch_streams_changes() {
    let server = Server::start();
    let setup = namespace_with_configmap("w", "a", "v: '1'");
    server.create("setup.yaml", &setup);
    let mut watch = server
        .client()
        .command()
        .args([
            "get",
            "configmaps",
            "-n",
            "w",
            "--watch",
            "-o",
            "custom-columns=NAME:.metadata.name,V:.data.v",
            "--no-headers",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    server.ok(&[
        "patch",
        "configmap",
        "a",
        "-n",
        "w",
        "--type",
        "merge",
        "-p",
        "{\"data\":{\"v\":\"2\"}}",
    ]);
    server.create("b.yaml", &configmap("w", "b", "v: '3'"));
    std::thread::sleep(Duration::from_millis(700));
    let _ = watch.kill(); // our own child, by PID
    let out = watch.wait_with_output().unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        ["a 1", "a 2", "b 3"],
        "the initial state, then each change"
    );
}

#[test]
fn stale_updates_conflict_and_unauthenticated_requests_are_refused() {
    let server = Server::start();
    let setup = namespace_with_configmap("c", "x", "v: '1'");
    server.create("setup.yaml", &setup);
    let old = server.ok(&["get", "configmap", "x", "-n", "c", "-o", "json"]);
    server.ok(&[
        "patch",
        "configmap",
        "x",
        "-n",
        "c",
        "--type",
        "merge",
        "-p",
        "{\"data\":{\"v\":\"2\"}}",
    ]);
    let stale = server.manifest("stale.json", &old.replace("\"v\": \"1\"", "\"v\": \"3\""));
    let conflict = server.fails(&["replace", "-f", &stale]);
    assert!(conflict.contains("the object has been modified"), "{conflict}");
    assert_eq!(
        server.ok(&["get", "configmap", "x", "-n", "c", "-o", "jsonpath={.data.v}"]),
        "2"
    );
    let json_patch = "[{\"op\":\"replace\",\"path\":\"/data/v\",\"value\":\"4\"}]";
    server.ok(&[
        "patch",
        "configmap",
        "x",
        "-n",
        "c",
        "--type",
        "json",
        "-p",
        json_patch,
    ]);
    assert_eq!(
        server.ok(&["get", "configmap", "x", "-n", "c", "-o", "jsonpath={.data.v}"]),
        "4"
    );

    // A client without a certificate is not let in (an unknown bearer token keeps kubectl
    // from prompting for a password).
    let anonymous = server.dir.path().join("anonymous.yaml");
    let config = std::fs::read_to_string(&server.kubeconfig).unwrap();
    let kept: Vec<&str> = config
        .lines()
        .filter(|l| !l.contains("client-certificate-data") && !l.contains("client-key-data"))
        .collect();
    std::fs::write(&anonymous, kept.join("\n")).unwrap();
    let out = kubectl_command(KUBECTL_1_33, &anonymous, &server.dir.path().join("cache2"))
        .args(["--token", "bogus", "get", "configmaps", "-n", "c"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Unauthorized") || stderr.contains("provide credentials"),
        "{stderr}"
    );
    // The token from the server's token file lets the same client in.
    let out = kubectl_command(KUBECTL_1_33, &anonymous, &server.dir.path().join("cache3"))
        .args(["--token", TOKEN, "get", "configmaps", "-n", "c", "-o", "name"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "configmap/x");
}

#[test]
fn get_watch_prints_table_rows_for_each_change() {
    let server = Server::start();
    let setup = namespace_with_configmap("tw", "a", "k1: v");
    server.create("setup.yaml", &setup);
    let plain = server.stream(&["get", "cm", "-n", "tw", "-w"]);
    let events = server.stream(&["get", "cm", "-n", "tw", "-w", "--output-watch-events"]);
    // The initial list (header and one row) shows the watches are set up: every later change
    // is seen, as each watch starts at the list's resourceVersion.
    assert_eq!(plain.wait_for(2)[0], ["NAME", "DATA", "AGE"]);
    assert_eq!(events.wait_for(2)[0], ["EVENT", "NAME", "DATA", "AGE"]);

    server.ok(&[
        "patch",
        "configmap",
        "a",
        "-n",
        "tw",
        "--type",
        "merge",
        "-p",
        "{\"data\":{\"k2\":\"v\",\"k3\":\"v\"}}",
    ]);
    server.create("b.yaml", &configmap("tw", "b", "only: one"));
    server.ok(&["delete", "configmap", "b", "-n", "tw"]);

    let first_cells = |rows: Vec<Vec<String>>, n: usize| -> Vec<Vec<String>> {
        rows.into_iter().map(|r| r[..n].to_vec()).collect()
    };
    let rows = plain.wait_for(5);
    assert!(
        rows[1..].iter().all(|r| r.len() == 3 && is_age(&r[2])),
        "{rows:?}"
    );
    assert_eq!(
        first_cells(rows, 2),
        [["NAME", "DATA"], ["a", "1"], ["a", "3"], ["b", "1"], ["b", "1"]],
        "a header once, then a row per change"
    );
    let rows = events.wait_for(5);
    assert!(
        rows[1..].iter().all(|r| r.len() == 4 && is_age(&r[3])),
        "{rows:?}"
    );
    assert_eq!(
        first_cells(rows, 3),
        [
            ["EVENT", "NAME", "DATA"],
            ["ADDED", "a", "1"],
            ["MODIFIED", "a", "3"],
            ["ADDED", "b", "1"],
            ["DELETED", "b", "1"]
        ]
    );
}

const DEPLOYMENT_WITH_UNKNOWN_FIELD: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx:1.25
        bogus: 1
";

#[test]
fn openapi_drives_explain_and_server_side_field_validation() {
    let server = Server::start();
    // explain reads /openapi/v3.
    let explained = server.ok(&["explain", "deployment.spec.strategy"]);
    assert!(
        explained.contains("FIELD: strategy <DeploymentStrategy>"),
        "{explained}"
    );
    assert!(
        explained.contains("rollingUpdate\t<RollingUpdateDeployment>"),
        "{explained}"
    );
    let explained = server.ok(&["explain", "pods.spec.containers.ports"]);
    assert!(
        explained.contains("containerPort\t<integer> -required-"),
        "{explained}"
    );

    // kubectl validates strictly by default, and the server names the unknown field as upstream.
    let file = server.manifest("deploy.yaml", DEPLOYMENT_WITH_UNKNOWN_FIELD);
    let err = server.fails(&["create", "-f", &file]);
    assert!(
        err.contains(
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: \
             unknown field \"spec.template.spec.containers[0].bogus\""
        ),
        "{err}"
    );
    // --validate=warn: created with a warning, the unknown field dropped.
    let out = server.kubectl(&["create", "--validate=warn", "-f", &file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains("Warning: unknown field \"spec.template.spec.containers[0].bogus\""),
        "{warned}"
    );
    let containers = server.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0]}",
    ]);
    assert!(!containers.contains("bogus"), "{containers}");

    // The documents themselves: v3 lists each group-version with a hash; v2 has every kind.
    let root = server.ok(&["get", "--raw", "/openapi/v3"]);
    assert!(
        root.contains("\"apis/apps/v1\":{\"serverRelativeURL\":\"/openapi/v3/apis/apps/v1?hash="),
        "{root}"
    );
    let v2: serde_json::Value = serde_json::from_str(&server.ok(&["get", "--raw", "/openapi/v2"])).unwrap();
    assert_eq!(
        v2["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]["x-kubernetes-patch-merge-key"],
        "name"
    );
}

const APPLIED_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {team: a, tier: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx:1.25
";

#[test]
fn server_side_apply_tracks_owners_conflicts_and_removals() {
    let server = Server::start();
    let file = server.manifest("web.yaml", APPLIED_DEPLOYMENT);
    let out = server.ok(&["apply", "--server-side", "-f", &file]);
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    let rv = server.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    server.ok(&["apply", "--server-side", "-f", &file]);
    let again = server.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(rv, again, "re-applying the same configuration writes nothing");
    let managers = server.ok(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation};{end}",
    ]);
    assert_eq!(managers, "kubectl/Apply;");
    let fields = server.ok(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[0].fieldsV1}",
    ]);
    assert!(fields.contains(r#""f:selector":{}"#), "atomic selector: {fields}");
    assert!(
        fields.contains(r#""k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{}}"#),
        "{fields}"
    );

    // Another manager changes the replicas: applying a different value conflicts, as upstream says.
    server.ok(&["patch", "deploy", "web", "-p", r#"{"spec":{"replicas":4}}"#]);
    let three = APPLIED_DEPLOYMENT.replace("replicas: 2", "replicas: 3");
    let file = server.manifest("web.yaml", &three);
    let err = server.fails(&["apply", "--server-side", "-f", &file]);
    assert!(
        err.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl-patch\" using apps/v1: .spec.replicas"
        ),
        "{err}"
    );
    server.ok(&["apply", "--server-side", "--force-conflicts", "-f", &file]);
    assert_eq!(
        server.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );

    // Dropping a field from the configuration removes it.
    let fewer = three.replace("labels: {team: a, tier: web}", "labels: {team: a}");
    let file = server.manifest("web.yaml", &fewer);
    server.ok(&["apply", "--server-side", "-f", &file]);
    let labels = server.ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.labels}"]);
    assert_eq!(labels, r#"{"team":"a"}"#);

    // Two appliers share a map key by key.
    let cm = |key: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  {key}: \"1\"\n")
    };
    let file = server.manifest("a.yaml", &cm("a"));
    server.ok(&["apply", "--server-side", "--field-manager=first", "-f", &file]);
    let file = server.manifest("b.yaml", &cm("b"));
    server.ok(&["apply", "--server-side", "--field-manager=second", "-f", &file]);
    let data = server.ok(&["get", "cm", "shared", "-o", "jsonpath={.data}"]);
    assert_eq!(data, r#"{"a":"1","b":"1"}"#);
}
