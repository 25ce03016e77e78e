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

/// A namespaced CRD with status and scale subresources, printer columns (one for `-o wide`
/// only), a short name, the `all` category, and a schema with defaults and constraints.
const WIDGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.selector}
    additionalPrinterColumns:
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Image, type: string, jsonPath: .spec.image}
    - {name: Ready, type: string, jsonPath: .status.ready, priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [image]
            properties:
              image: {type: string, minLength: 1}
              replicas: {type: integer, minimum: 0, default: 1}
              mode: {type: string, enum: [fast, slow], default: fast}
          status:
            type: object
            properties:
              replicas: {type: integer}
              ready: {type: string}
              selector: {type: string}
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

fn widget(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{spec}"
    )
}

#[test]
fn kubectl_drives_a_crd_and_its_custom_resources() {
    let server = Server::start();
    // kubectl validates the CRD against the server's OpenAPI (strict server-side validation).
    server.ok(&["apply", "-f", &server.manifest("crd.yaml", WIDGET_CRD)]);
    let waited = server.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    assert!(waited.contains("condition met"), "{waited}");
    let crd = server.ok(&["get", "crd", "widgets.example.com", "-o", "json"]);
    let crd: serde_json::Value = serde_json::from_str(&crd).unwrap();
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "Widget");
    assert_eq!(crd["status"]["storedVersions"], serde_json::json!(["v1"]));
    assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
    let resources = server.ok(&["api-resources", "--api-group=example.com"]);
    assert_eq!(
        words(&resources)[1],
        ["widgets", "wd", "example.com/v1", "true", "Widget"],
        "{resources}"
    );

    // The schema is published in OpenAPI: kubectl explain reads it.
    let explained = server.ok(&["explain", "widgets.spec"]);
    assert!(explained.contains("KIND:       Widget"), "{explained}");
    assert!(explained.contains("<string> -required-"), "{explained}");
    assert!(explained.contains("enum: fast, slow"), "{explained}");

    // kubectl validates strictly by default: the schema's unknown fields are refused...
    let w1 = widget("w1", "  image: nginx\n  replicas: 2\n  unknown: 1\n") + "status:\n  ready: \"yes\"\n";
    let both = server.manifest(
        "w.yaml",
        &format!("{w1}---\n{}", widget("w2", "  image: redis\n")),
    );
    let err = server.fails(&["create", "-f", &both]);
    assert!(
        err.contains(r#"Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.unknown""#),
        "{err}"
    );
    // ...and otherwise pruned; defaults are filled in, and status is the subresource's alone.
    server.ok(&["delete", "--ignore-not-found", "-f", &both]);
    server.ok(&["create", "--validate=false", "-f", &both]);
    let w1: serde_json::Value = serde_json::from_str(&server.ok(&["get", "wd", "w1", "-o", "json"])).unwrap();
    assert_eq!(
        w1["spec"],
        serde_json::json!({"image": "nginx", "replicas": 2, "mode": "fast"})
    );
    assert!(w1.get("status").is_none(), "{w1}");
    assert_eq!(w1["metadata"]["generation"], 1);

    // Printer columns, the wide one only with -o wide; `get all` includes the category.
    let table = words(&server.ok(&["get", "widgets"]));
    assert_eq!(table[0], ["NAME", "REPLICAS", "IMAGE", "AGE"]);
    assert_eq!(table[1][..3], ["w1", "2", "nginx"]);
    assert_eq!(table[2][..3], ["w2", "1", "redis"]);
    assert!(is_age(&table[1][3]), "{table:?}");
    let all = server.ok(&["get", "all"]);
    assert!(all.contains("widget.example.com/w1"), "{all}");

    // Schema violations read as upstream's.
    let err = server.create_fails("bad.yaml", &widget("bad", "  replicas: three\n  mode: other\n"));
    assert!(err.contains("The Widget \"bad\" is invalid"), "{err}");
    for cause in [
        r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
        r#"spec.mode: Unsupported value: "other": supported values: "fast", "slow""#,
        "spec.image: Required value",
    ] {
        assert!(err.contains(cause), "missing {cause:?} in {err}");
    }

    // Scale subresource: kubectl scale writes spec.replicas through /scale.
    server.ok(&["scale", "widget", "w1", "--replicas=5"]);
    let w1: serde_json::Value = serde_json::from_str(&server.ok(&["get", "wd", "w1", "-o", "json"])).unwrap();
    assert_eq!(w1["spec"]["replicas"], 5);
    assert_eq!(w1["metadata"]["generation"], 2, "a spec change bumps generation");

    // Status subresource: only status changes there, and status changes bump no generation.
    server.ok(&[
        "patch",
        "wd",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":"True","replicas":5,"selector":"app=w1"},"spec":{"image":"ignored"}}"#,
    ]);
    let wide = words(&server.ok(&["get", "wd", "w1", "-o", "wide"]));
    assert_eq!(wide[0], ["NAME", "REPLICAS", "IMAGE", "READY", "AGE"]);
    assert_eq!(wide[1][..4], ["w1", "5", "nginx", "True"]);
    let scale: serde_json::Value = serde_json::from_str(&server.ok(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/widgets/w1/scale",
    ]))
    .unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(
        scale["status"],
        serde_json::json!({"replicas": 5, "selector": "app=w1"})
    );
    // The main resource ignores status; custom resources refuse strategic merge patches.
    server.ok(&[
        "patch",
        "wd",
        "w1",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":"no"}}"#,
    ]);
    let err = server.fails(&["patch", "wd", "w1", "-p", r#"{"spec":{"image":"x"}}"#]);
    assert!(
        err.contains("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"),
        "{err}"
    );
    let w1: serde_json::Value = serde_json::from_str(&server.ok(&["get", "wd", "w1", "-o", "json"])).unwrap();
    assert_eq!(w1["status"]["ready"], "True");
    assert_eq!(w1["metadata"]["generation"], 2);

    // Another served version shows the same objects; a deprecated one says so.
    let out = server.kubectl(&[
        "get",
        "widgets.v1beta1.example.com",
        "w1",
        "-o",
        "jsonpath={.apiVersion}",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "example.com/v1beta1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: example.com/v1beta1 Widget is deprecated; use example.com/v1 Widget"),
        "{stderr}"
    );

    // Deleting the CRD removes its custom resources and stops serving them.
    server.ok(&["delete", "crd", "widgets.example.com"]);
    let gone = server.fails(&["get", "--raw", "/apis/example.com/v1/namespaces/default/widgets"]);
    assert!(gone.contains("NotFound") || gone.contains("not found"), "{gone}");
    server.ok(&[
        "apply",
        "--server-side",
        "-f",
        &server.manifest("crd.yaml", WIDGET_CRD),
    ]);
    server.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    let list = server.ok(&["get", "--raw", "/apis/example.com/v1/namespaces/default/widgets"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["kind"], "WidgetList");
    assert_eq!(
        list["items"],
        serde_json::json!([]),
        "instances of the deleted CRD are gone"
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
    // Patches too: kubectl patch names no fieldValidation, so the server's default (Warn)
    // applies: the field is dropped, with a warning.
    let patch = r#"{"spec":{"paused":true,"bogus":1}}"#;
    let out = server.kubectl(&["patch", "deploy", "web", "--type", "merge", "-p", patch]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains(r#"Warning: unknown field "spec.bogus""#),
        "{warned}"
    );

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
    // The API server's own behaviour: no deployment controller writing status meanwhile.
    let server = Server::start_with(&["--controllers=*,-deployment"]);
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

/// A JSON document kubectl printed.
fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn created_objects_carry_upstream_defaults() {
    // The API server's own behaviour: no deployment controller writing status meanwhile, no
    // scheduler (the pod's status is exactly what the API server wrote).
    let server = Server::start_with(&["--controllers=*,-deployment", "--disable-scheduler"]);
    server.ok(&["run", "web", "--image=nginx"]);
    let pod = json_of(&server.ok(&["get", "pod", "web", "-o", "json"]));
    let spec = &pod["spec"];
    for (key, value) in [
        ("dnsPolicy", serde_json::json!("ClusterFirst")),
        ("restartPolicy", serde_json::json!("Always")),
        ("schedulerName", serde_json::json!("default-scheduler")),
        ("securityContext", serde_json::json!({})),
        ("terminationGracePeriodSeconds", serde_json::json!(30)),
        ("enableServiceLinks", serde_json::json!(true)),
        ("serviceAccountName", serde_json::json!("default")),
        ("serviceAccount", serde_json::json!("default")),
        ("priority", serde_json::json!(0)),
        ("preemptionPolicy", serde_json::json!("PreemptLowerPriority")),
    ] {
        assert_eq!(spec[key], value, "spec.{key}");
    }
    assert_eq!(
        spec["tolerations"],
        serde_json::json!([
            {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
            {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300},
        ])
    );
    let container = &spec["containers"][0];
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(container["terminationMessagePolicy"], "File");
    assert_eq!(container["resources"], serde_json::json!({}));
    assert_eq!(
        pod["status"],
        serde_json::json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    assert_eq!(pod["metadata"]["generation"], 1);

    server.ok(&["create", "deployment", "app", "--image=nginx:1.27", "--port=80"]);
    let deploy = json_of(&server.ok(&["get", "deploy", "app", "-o", "json"]));
    let spec = &deploy["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let template = &spec["template"]["spec"];
    assert_eq!(template["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(template["containers"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(template["dnsPolicy"], "ClusterFirst");
    assert!(
        template.get("tolerations").is_none(),
        "admission is for pods only"
    );
    assert_eq!(deploy["status"], serde_json::json!({}));
    // kubectl sends the template's unset creationTimestamp as an empty protobuf Time.
    assert!(
        spec["template"]["metadata"]["creationTimestamp"].is_null(),
        "{deploy}"
    );

    // Re-applying a manifest whose defaults the server filled in changes nothing.
    let applied = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: applied\nspec:\n  selector:\n    matchLabels: {app: applied}\n  template:\n    metadata:\n      labels: {app: applied}\n    spec:\n      containers:\n      - name: c\n        image: busybox:1.36\n";
    let path = server.manifest("applied.yaml", applied);
    server.ok(&["apply", "--validate=false", "-f", &path]);
    let rv = server.ok(&[
        "get",
        "deploy",
        "applied",
        "-o",
        "jsonpath={.metadata.resourceVersion} {.metadata.generation}",
    ]);
    assert!(
        server
            .ok(&["apply", "--validate=false", "-f", &path])
            .contains("unchanged")
    );
    assert_eq!(
        server.ok(&[
            "get",
            "deploy",
            "applied",
            "-o",
            "jsonpath={.metadata.resourceVersion} {.metadata.generation}"
        ]),
        rv
    );

    server.ok(&["create", "job", "pi", "--image=perl:5.34"]);
    let job = json_of(&server.ok(&["get", "job", "pi", "-o", "json"]));
    let uid = job["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    assert_eq!(job["spec"]["template"]["metadata"]["labels"]["job-name"], "pi");
    assert_eq!(job["metadata"]["labels"]["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(job["spec"]["backoffLimit"], 6);
    assert_eq!(job["spec"]["completionMode"], "NonIndexed");

    server.ok(&["create", "secret", "generic", "s", "--from-literal=a=b"]);
    assert_eq!(
        server.ok(&["get", "secret", "s", "-o", "jsonpath={.type}"]),
        "Opaque"
    );
    assert_eq!(
        server.ok(&[
            "get",
            "ns",
            "default",
            "-o",
            "jsonpath={.metadata.labels.kubernetes\\.io/metadata\\.name}"
        ]),
        "default"
    );
    assert!(
        server
            .ok(&["get", "priorityclass"])
            .contains("system-node-critical")
    );
}

#[test]
fn services_get_cluster_ips_and_node_ports_without_collisions() {
    let server = Server::start();
    let kubernetes = json_of(&server.ok(&["get", "svc", "kubernetes", "-o", "json"]));
    assert_eq!(kubernetes["spec"]["clusterIP"], "10.43.0.1");
    assert_eq!(kubernetes["spec"]["clusterIPs"], serde_json::json!(["10.43.0.1"]));
    assert_eq!(kubernetes["spec"]["ports"][0]["port"], 443);
    assert_eq!(kubernetes["spec"]["ports"][0]["name"], "https");
    assert_eq!(kubernetes["metadata"]["labels"]["provider"], "kubernetes");
    let endpoints = server.ok(&[
        "get",
        "endpoints",
        "kubernetes",
        "-o",
        "jsonpath={.subsets[0].addresses[0].ip}",
    ]);
    assert_eq!(endpoints, "127.0.0.1");
    assert!(
        server
            .ok(&["get", "endpointslices", "kubernetes"])
            .contains("127.0.0.1")
    );

    server.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let web = json_of(&server.ok(&["get", "svc", "web", "-o", "json"]));
    let ip = web["spec"]["clusterIP"].as_str().unwrap().to_owned();
    assert!(ip.starts_with("10.43.") && ip != "10.43.0.1", "{ip}");
    assert_eq!(web["spec"]["ipFamilies"], serde_json::json!(["IPv4"]));
    assert_eq!(web["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(web["spec"]["sessionAffinity"], "None");
    assert_eq!(web["spec"]["internalTrafficPolicy"], "Cluster");
    assert_eq!(web["spec"]["ports"][0]["protocol"], "TCP");
    assert_eq!(web["status"], serde_json::json!({"loadBalancer": {}}));
    assert!(web["metadata"].get("generation").is_none());

    // A requested address is honoured once, and must be in the range.
    let with_ip = |name: &str, ip: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  clusterIP: {ip}\n  ports:\n  - port: 80\n"
        )
    };
    server.create("fixed.yaml", &with_ip("fixed", "10.43.100.100"));
    let err = server.create_fails("taken.yaml", &with_ip("taken", "10.43.100.100"));
    assert!(
        err.contains("The Service \"taken\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.100.100\"}: failed to allocate IP 10.43.100.100: provided IP is already allocated"),
        "{err}"
    );
    let err = server.create_fails("outside.yaml", &with_ip("outside", "192.168.0.1"));
    assert!(
        err.contains("is not in the valid range. The range of valid IPs is 10.43.0.0/16"),
        "{err}"
    );
    // Deleting a Service releases its address.
    server.ok(&["delete", "svc", "fixed"]);
    server.create("again.yaml", &with_ip("again", "10.43.100.100"));

    server.ok(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:8080",
        "--node-port=30080",
    ]);
    let np = json_of(&server.ok(&["get", "svc", "np", "-o", "json"]));
    assert_eq!(np["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    let err = server.fails(&[
        "create",
        "service",
        "nodeport",
        "np2",
        "--tcp=80:8080",
        "--node-port=30080",
    ]);
    assert!(
        err.contains("spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"),
        "{err}"
    );
    let err = server.fails(&[
        "create",
        "service",
        "nodeport",
        "np3",
        "--tcp=80:8080",
        "--node-port=80",
    ]);
    assert!(
        err.contains("provided port is not in the valid range. The range of valid ports is 30000-32767"),
        "{err}"
    );
    server.ok(&["create", "service", "nodeport", "auto", "--tcp=80:8080"]);
    let port = server.ok(&["get", "svc", "auto", "-o", "jsonpath={.spec.ports[0].nodePort}"]);
    let port: u16 = port.parse().unwrap();
    assert!((30000..=32767).contains(&port) && port != 30080, "{port}");
    // Updates keep what was allocated, even when the client leaves it out.
    server.ok(&["label", "svc", "auto", "tier=front"]);
    assert_eq!(
        server.ok(&["get", "svc", "auto", "-o", "jsonpath={.spec.ports[0].nodePort}"]),
        port.to_string()
    );
    server.ok(&["delete", "svc", "np"]);
    server.ok(&[
        "create",
        "service",
        "nodeport",
        "np2",
        "--tcp=80:8080",
        "--node-port=30080",
    ]);
    // Headless and ExternalName services get no address.
    server.ok(&[
        "create",
        "service",
        "clusterip",
        "headless",
        "--clusterip=None",
        "--tcp=80:80",
    ]);
    assert_eq!(
        server.ok(&["get", "svc", "headless", "-o", "jsonpath={.spec.clusterIPs}"]),
        "[\"None\"]"
    );
    server.ok(&[
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name=example.com",
    ]);
    assert_eq!(
        server.ok(&["get", "svc", "ext", "-o", "jsonpath={.spec.clusterIP}"]),
        ""
    );
}

#[test]
fn scale_binding_and_eviction_subresources() {
    let server = Server::start();
    server.ok(&["create", "deployment", "web", "--image=nginx:1.27"]);
    server.ok(&["scale", "deployment", "web", "--replicas=4"]);
    assert_eq!(
        server.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}"
        ]),
        "4 2"
    );
    let scale = json_of(&server.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]));
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 4);
    assert_eq!(scale["status"]["selector"], "app=web");
    let err = server.fails(&[
        "patch",
        "deploy",
        "web",
        "--subresource=scale",
        "--type=merge",
        "-p",
        "{\"spec\":{\"replicas\":-1}}",
    ]);
    assert!(
        err.contains("The Scale \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{err}"
    );
    server.ok(&[
        "scale",
        "deployment",
        "web",
        "--current-replicas=4",
        "--replicas=2",
    ]);
    assert_eq!(
        server.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );
    server.create(
        "rc.yaml",
        "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: rc\nspec:\n  template:\n    metadata:\n      labels: {app: rc}\n    spec:\n      containers:\n      - {name: c, image: nginx}\n",
    );
    server.ok(&["scale", "rc", "rc", "--replicas=3"]);
    assert_eq!(
        server.ok(&[
            "get",
            "rc",
            "rc",
            "-o",
            "jsonpath={.spec.replicas} {.spec.selector.app}"
        ]),
        "3 rc"
    );

    // Binding assigns a node once.
    server.ok(&["run", "p", "--image=nginx", "--labels=app=p"]);
    let binding = "apiVersion: v1\nkind: Binding\nmetadata:\n  name: p\ntarget:\n  apiVersion: v1\n  kind: Node\n  name: node-1\n";
    server.create("binding.yaml", binding);
    assert_eq!(
        server.ok(&[
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.spec.nodeName} {.status.conditions[0].type}={.status.conditions[0].status}"
        ]),
        "node-1 PodScheduled=True"
    );
    assert_eq!(
        server.ok(&["get", "pod", "p", "-o", "jsonpath={.metadata.generation}"]),
        "1"
    );
    let err = server.create_fails("binding.yaml", binding);
    assert!(
        err.contains("Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"node-1\""),
        "{err}"
    );

    // Eviction honours a PodDisruptionBudget that allows no disruption.
    server.ok(&[
        "patch",
        "pod",
        "p",
        "--subresource=status",
        "--type=merge",
        "-p",
        "{\"status\":{\"phase\":\"Running\"}}",
    ]);
    server.ok(&["create", "pdb", "p", "--selector=app=p", "--min-available=1"]);
    let eviction = server.manifest(
        "eviction.json",
        "{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{\"name\":\"p\",\"namespace\":\"default\"}}",
    );
    let path = "/api/v1/namespaces/default/pods/p/eviction";
    let err = server.fails(&["create", "--raw", path, "-f", &eviction]);
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{err}"
    );
    server.ok(&["patch", "pdb", "p", "--subresource=status", "--type=merge", "-p",
        "{\"status\":{\"observedGeneration\":1,\"disruptionsAllowed\":1,\"currentHealthy\":1,\"desiredHealthy\":1,\"expectedPods\":1}}"]);
    let out = server.ok(&["create", "--raw", path, "-f", &eviction]);
    assert!(out.contains("\"status\":\"Success\""), "{out}");
    // A running pod bound to a node is deleted gracefully: it terminates until its node (none
    // runs here) removes it, or a forced delete does.
    assert_eq!(
        server.ok(&[
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.metadata.deletionGracePeriodSeconds}"
        ]),
        "30"
    );
    server.ok(&["delete", "pod", "p", "--grace-period=0", "--force"]);
    assert!(server.fails(&["get", "pod", "p"]).contains("NotFound"));
    assert_eq!(
        server.ok(&["get", "pdb", "p", "-o", "jsonpath={.status.disruptionsAllowed}"]),
        "0"
    );
}

#[test]
fn invalid_objects_are_refused_with_upstream_messages() {
    let server = Server::start();
    let err = server.create_fails(
        "bad-name.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n",
    );
    assert!(
        err.contains("The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"),
        "{err}"
    );
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: other}\n    spec:\n      containers:\n      - name: c\n";
    let err = server.create_fails("mismatch.yaml", deployment);
    assert!(
        err.contains("The Deployment \"web\" is invalid: \n* spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`\n* spec.template.spec.containers[0].image: Required value"),
        "{err}"
    );
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: nginx\n    ports:\n    - containerPort: 70000\n";
    let err = server.create_fails("port.yaml", pod);
    assert!(
        err.contains("spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"),
        "{err}"
    );
    // Selectors are immutable; pods' specs too, but for images.
    server.ok(&["create", "deployment", "app", "--image=nginx:1.27"]);
    let err = server.fails(&[
        "patch",
        "deploy",
        "app",
        "--type=merge",
        "-p",
        "{\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"x\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"x\"}}}}}",
    ]);
    assert!(
        err.contains("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"),
        "{err}"
    );
    server.ok(&["run", "p", "--image=nginx:1.26"]);
    // (JSON patches: kubectl's strategic merge patches need the server's strategic merge.)
    let image = "[{\"op\":\"replace\",\"path\":\"/spec/containers/0/image\",\"value\":\"nginx:1.27\"}]";
    server.ok(&["patch", "pod", "p", "--type=json", "-p", image]);
    let env =
        "[{\"op\":\"add\",\"path\":\"/spec/containers/0/env\",\"value\":[{\"name\":\"A\",\"value\":\"1\"}]}]";
    let err = server.fails(&["patch", "pod", "p", "--type=json", "-p", env]);
    assert!(
        err.contains(
            "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
        ),
        "{err}"
    );
    let err = server.create_fails(
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - {port: 80}\n  - {port: 70000, name: b}\n",
    );
    assert!(
        err.contains("The Service \"s\" is invalid: \n* spec.ports[0].name: Required value\n* spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive"),
        "{err}"
    );
    // Namespaces must exist, and the system ones stay.
    let err = server.fails(&["create", "configmap", "c", "-n", "missing"]);
    assert!(err.contains("namespaces \"missing\" not found"), "{err}");
    let err = server.fails(&["delete", "namespace", "kube-system"]);
    assert!(
        err.contains("namespaces \"kube-system\" is forbidden: this namespace may not be deleted"),
        "{err}"
    );
}

#[test]
fn default_classes_and_daemonset_template_generation() {
    let server = Server::start();
    server.create(
        "classes.yaml",
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: local\n  annotations:\n    storageclass.kubernetes.io/is-default-class: \"true\"\nprovisioner: rancher.io/local-path\n---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\n  annotations:\n    ingressclass.kubernetes.io/is-default-class: \"true\"\nspec:\n  controller: k8s.io/ingress-nginx\n",
    );
    let claim = |name: &str, class: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\nspec:\n{class}  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n"
        )
    };
    server.create(
        "claims.yaml",
        &(claim("a", "") + "---\n" + &claim("b", "  storageClassName: \"\"\n")),
    );
    assert_eq!(
        server.ok(&[
            "get",
            "pvc",
            "a",
            "b",
            "-o",
            "jsonpath={.items[*].spec.storageClassName}|{.items[*].status.phase}"
        ]),
        "local |Pending Pending"
    );
    server.ok(&["create", "ingress", "web", "--rule=example.com/=web:80"]);
    assert_eq!(
        server.ok(&["get", "ingress", "web", "-o", "jsonpath={.spec.ingressClassName}"]),
        "nginx"
    );
    server.create(
        "ds.yaml",
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels: {app: agent}\n  template:\n    metadata:\n      labels: {app: agent}\n    spec:\n      containers:\n      - {name: c, image: busybox:1.36}\n",
    );
    let generations = "jsonpath={.metadata.generation} {.metadata.annotations.deprecated\\.daemonset\\.template\\.generation}";
    assert_eq!(server.ok(&["get", "ds", "agent", "-o", generations]), "1 1");
    let image = "[{\"op\":\"replace\",\"path\":\"/spec/template/spec/containers/0/image\",\"value\":\"busybox:1.37\"}]";
    server.ok(&["patch", "ds", "agent", "--type=json", "-p", image]);
    assert_eq!(server.ok(&["get", "ds", "agent", "-o", generations]), "2 2");
    assert_eq!(
        server.ok(&[
            "get",
            "ds",
            "agent",
            "-o",
            "jsonpath={.status.numberReady} {.spec.updateStrategy.rollingUpdate.maxUnavailable}"
        ]),
        "0 1"
    );
}

#[test]
fn limit_ranges_fill_in_and_bound_container_resources() {
    let server = Server::start();
    server.create(
        "limits.yaml",
        "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: limits\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 500m, memory: 256Mi}\n    defaultRequest: {cpu: 0.1}\n    max: {memory: 1Gi}\n",
    );
    assert_eq!(
        server.ok(&[
            "get",
            "limits",
            "limits",
            "-o",
            "jsonpath={.spec.limits[0].defaultRequest}"
        ]),
        r#"{"cpu":"100m","memory":"256Mi"}"#
    );
    server.ok(&["run", "p", "--image=nginx:1.27"]);
    let pod = json_of(&server.ok(&["get", "pod", "p", "-o", "json"]));
    assert_eq!(
        pod["spec"]["containers"][0]["resources"],
        serde_json::json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}})
    );
    assert_eq!(
        pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container p; cpu, memory limit for container p"
    );
    assert_eq!(pod["status"]["qosClass"], "Burstable");
    let err = server.create_fails(
        "big.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n  containers:\n  - name: c\n    image: nginx:1.27\n    resources:\n      limits: {memory: 2Gi}\n",
    );
    assert!(
        err.contains(
            "pods \"big\" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi"
        ),
        "{err}"
    );
}

#[test]
fn pods_of_existing_service_accounts_mount_their_token() {
    let server = Server::start();
    // The ServiceAccount controller creates `default`.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !server
        .kubectl(&["get", "serviceaccount", "default"])
        .status
        .success()
    {
        assert!(std::time::Instant::now() < deadline, "no default ServiceAccount");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    server.ok(&["run", "p", "--image=nginx:1.27"]);
    let pod = json_of(&server.ok(&["get", "pod", "p", "-o", "json"]));
    let volume = &pod["spec"]["volumes"][0];
    let name = volume["name"].as_str().unwrap();
    assert!(name.starts_with("kube-api-access-") && name.len() == 21, "{name}");
    assert_eq!(volume["projected"]["defaultMode"], 420);
    assert_eq!(
        volume["projected"]["sources"][0],
        serde_json::json!({"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}})
    );
    assert_eq!(
        pod["spec"]["containers"][0]["volumeMounts"],
        serde_json::json!([{"name": name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}])
    );
    // An account that opts out gets no token.
    server.create(
        "quiet.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: quiet\nautomountServiceAccountToken: false\n",
    );
    server.ok(&[
        "run",
        "q",
        "--image=nginx:1.27",
        "--overrides={\"spec\":{\"serviceAccountName\":\"quiet\"}}",
    ]);
    assert_eq!(
        server.ok(&["get", "pod", "q", "-o", "jsonpath={.spec.volumes}"]),
        ""
    );
    // A pod naming an account that does not exist is refused, as upstream's plugin does …
    let refused = server.fails(&[
        "run",
        "ghost",
        "--image=nginx:1.27",
        "--overrides={\"spec\":{\"serviceAccountName\":\"missing\"}}",
    ]);
    assert!(
        refused.contains(
            "Error from server (Forbidden): pods \"ghost\" is forbidden: error looking up service account default/missing: serviceaccount \"missing\" not found"
        ),
        "{refused}"
    );
    // … and one whose account lists imagePullSecrets takes them when it names none.
    server.create(
        "puller.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: puller\nimagePullSecrets:\n- name: regcred\n",
    );
    server.ok(&[
        "run",
        "pulls",
        "--image=nginx:1.27",
        "--overrides={\"spec\":{\"serviceAccountName\":\"puller\"}}",
    ]);
    assert_eq!(
        server.ok(&[
            "get",
            "pod",
            "pulls",
            "-o",
            "jsonpath={.spec.imagePullSecrets[*].name}"
        ]),
        "regcred"
    );
}

/// Group-versions that share a storage show each other's objects in their own shape: Events
/// of events.k8s.io/v1 and core/v1, HorizontalPodAutoscalers of autoscaling/v1 and v2.
#[test]
fn shared_storage_versions_convert_events_and_autoscalers() {
    let server = Server::start();
    // An events.k8s.io/v1 Event (as kube-runtime's recorder writes them) …
    server.create(
        "event.yaml",
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: web.1\n  namespace: default\neventTime: \"2026-01-01T00:00:00.000000Z\"\nreportingController: example.com/ctl\nreportingInstance: ctl-1\naction: Scale\nreason: Scaled\nnote: scaled up to 3\ntype: Normal\nregarding:\n  kind: Deployment\n  name: web\n  namespace: default\n",
    );
    // … read as a core/v1 Event, found by a field selector on the core field names.
    let core = json_of(&server.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web,reason=Scaled",
        "-o",
        "json",
    ]));
    let item = &core["items"][0];
    assert_eq!(item["message"], "scaled up to 3", "{core}");
    assert_eq!(item["involvedObject"]["kind"], "Deployment");
    assert_eq!(item["reportingComponent"], "example.com/ctl");
    assert!(item.get("note").is_none() && item.get("regarding").is_none());
    // A core Event read through events.k8s.io/v1, in a list and a watch.
    server.create(
        "core-event.yaml",
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: pod.2\n  namespace: default\ninvolvedObject:\n  kind: Pod\n  name: p\n  namespace: default\nreason: Pulled\nmessage: image pulled\ntype: Normal\nsource:\n  component: kubelet\n  host: n1\ncount: 3\nfirstTimestamp: \"2026-01-01T00:00:00Z\"\nlastTimestamp: \"2026-01-01T00:00:05Z\"\n",
    );
    let v1 = json_of(&server.ok(&["get", "events.v1.events.k8s.io", "pod.2", "-o", "json"]));
    assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
    assert_eq!(
        (
            &v1["note"],
            &v1["regarding"]["name"],
            &v1["deprecatedCount"],
            &v1["deprecatedSource"]["host"]
        ),
        (&"image pulled".into(), &"p".into(), &3.into(), &"n1".into()),
        "{v1}"
    );
    let watched = server.ok(&[
        "get",
        "events.v1.events.k8s.io",
        "--watch-only=false",
        "-w",
        "--request-timeout=2s",
        "-o",
        "json",
        "--field-selector",
        "metadata.name=pod.2",
    ]);
    assert!(watched.contains("\"note\": \"image pulled\""), "{watched}");

    // An autoscaling/v1 HPA read through v2, and a v2 metric beyond CPU read through v1.
    server.create(
        "hpa.yaml",
        "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 5\n  targetCPUUtilizationPercentage: 60\n",
    );
    let v2 = json_of(&server.ok(&[
        "get",
        "horizontalpodautoscalers.v2.autoscaling",
        "web",
        "-o",
        "json",
    ]));
    assert_eq!(
        v2["spec"]["metrics"],
        serde_json::json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}])
    );
    server.ok(&[
        "patch",
        "horizontalpodautoscalers.v2.autoscaling",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/metrics/-","value":{"type":"Pods","pods":{"metric":{"name":"qps"},"target":{"type":"AverageValue","averageValue":"10"}}}}]"#,
    ]);
    let v1 = json_of(&server.ok(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "-o",
        "json",
    ]));
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
    assert_eq!(
        v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"],
        r#"[{"pods":{"metricName":"qps","targetAverageValue":"10"},"type":"Pods"}]"#
    );
    // Invalid through v1 is refused as upstream, naming the internal field.
    let err = server.fails(&[
        "patch",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"targetCPUUtilizationPercentage":0}}"#,
    ]);
    assert!(
        err.contains("averageUtilization: Invalid value: 0: must be greater than 0"),
        "{err}"
    );
}

#[test]
fn ephemeral_containers_are_added_through_their_subresource_and_never_removed_or_changed() {
    let server = Server::start();
    server.ok(&["run", "p", "--image=nginx:1.27"]);
    // kubectl debug: a strategic merge patch to pods/p/ephemeralcontainers.
    server.ok(&[
        "debug",
        "p",
        "--image=busybox",
        "--target=p",
        "-c",
        "dbg",
        "--",
        "sh",
    ]);
    let raw = "/api/v1/namespaces/default/pods/p/ephemeralcontainers";
    let pod = json_of(&server.ok(&["get", "--raw", raw]));
    assert_eq!(pod["kind"], "Pod");
    let added = &pod["spec"]["ephemeralContainers"][0];
    assert_eq!(added["name"], "dbg");
    assert_eq!(added["targetContainerName"], "p");
    assert_eq!(added["terminationMessagePolicy"], "File");
    // The main resource cannot touch them; nor can the subresource remove or change one.
    let remove = "[{\"op\":\"remove\",\"path\":\"/spec/ephemeralContainers/0\"}]";
    let err = server.fails(&["patch", "pod", "p", "--type=json", "-p", remove]);
    assert!(
        err.contains("spec: Forbidden: pod updates may not change fields"),
        "{err}"
    );
    let mut removed = pod.clone();
    removed["spec"]["ephemeralContainers"] = serde_json::json!([]);
    let file = server.file("removed.json", removed.to_string().as_bytes());
    let err = server.fails(&["replace", "--raw", raw, "-f", &file]);
    assert!(
        err.contains(
            "spec.ephemeralContainers: Forbidden: existing ephemeral containers \"dbg\" may not be removed"
        ),
        "{err}"
    );
    let mut changed = pod.clone();
    changed["spec"]["ephemeralContainers"][0]["image"] = "busybox:1.36".into();
    let file = server.file("changed.json", changed.to_string().as_bytes());
    let err = server.fails(&["replace", "--raw", raw, "-f", &file]);
    assert!(
        err.contains("spec.ephemeralContainers.dbg: Forbidden: existing ephemeral containers \"dbg\" may not be changed"),
        "{err}"
    );
    // New entries are validated: unique names, a known target, no workload-only fields.
    let mut bad = pod.clone();
    bad["spec"]["ephemeralContainers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
        "name": "p", "image": "busybox", "targetContainerName": "nope",
        "ports": [{"containerPort": 80}], "terminationMessagePolicy": "File"}));
    let file = server.file("bad.json", bad.to_string().as_bytes());
    let err = server.fails(&["replace", "--raw", raw, "-f", &file]);
    for cause in [
        "spec.ephemeralContainers[1].name: Duplicate value: \"p\"",
        "spec.ephemeralContainers[1].targetContainerName: Not found: \"nope\"",
        "spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an Ephemeral Container",
    ] {
        assert!(err.contains(cause), "{cause}: {err}");
    }
    // A second debugger is added next to the first; other fields of the pod stay as they were.
    server.ok(&["debug", "p", "--image=busybox", "-c", "dbg2", "--", "true"]);
    assert_eq!(
        server.ok(&[
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.spec.ephemeralContainers[*].name} {.spec.containers[0].image}"
        ]),
        "dbg dbg2 nginx:1.27"
    );
    let err = server.fails(&["delete", "--raw", raw]);
    assert!(
        err.contains("MethodNotAllowed") || err.contains("method"),
        "{err}"
    );
}

/// Responses carry upstream's key order (`kind`, `apiVersion`, `metadata` first; lists then
/// `items`; watch events `type` then `object`): clients that decode as they read report errors
/// by position, so the order is observable.
#[test]
fn responses_write_type_meta_and_metadata_first() {
    let server = Server::start();
    server.ok(&["create", "configmap", "order", "--from-literal=a=b"]);
    let object = server.ok(&["get", "--raw", "/api/v1/namespaces/default/configmaps/order"]);
    assert!(
        object.starts_with(r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"#),
        "{object}"
    );
    let list = server.ok(&["get", "--raw", "/api/v1/namespaces/default/configmaps"]);
    assert!(
        list.starts_with(r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"#),
        "{list}"
    );
    assert!(list.contains(r#""items":[{"metadata":{"#), "{list}");
    let service = server.ok(&["get", "--raw", "/api/v1/namespaces/default/services/kubernetes"]);
    assert!(
        service.starts_with(r#"{"kind":"Service","apiVersion":"v1","metadata""#),
        "{service}"
    );
    let events = server.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/configmaps?watch=true&fieldSelector=metadata.name%3Dorder&timeoutSeconds=1",
    ]);
    assert!(
        events.starts_with(r#"{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"#),
        "{events}"
    );
}

/// ComponentStatus: computed, read-only, deprecated with upstream's warning and columns.
#[test]
fn component_statuses_report_the_control_plane_healthy() {
    let server = Server::start();
    let out = server.kubectl(&["get", "componentstatuses"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Warning: v1 ComponentStatus is deprecated in v1.19+\n"
    );
    let table: Vec<Vec<String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        table,
        [
            vec!["NAME", "STATUS", "MESSAGE", "ERROR"],
            vec!["scheduler", "Healthy", "ok"],
            vec!["controller-manager", "Healthy", "ok"],
            vec!["etcd-0", "Healthy", "ok"],
        ]
    );
    let etcd = server.ok(&["get", "--raw", "/api/v1/componentstatuses/etcd-0"]);
    assert_eq!(
        etcd.trim_end(),
        r#"{"kind":"ComponentStatus","apiVersion":"v1","metadata":{"creationTimestamp":null,"name":"etcd-0"},"conditions":[{"message":"ok","status":"True","type":"Healthy"}]}"#
    );
    assert_eq!(
        server
            .ok(&[
                "get",
                "cs",
                "-o",
                "name",
                "--field-selector=metadata.name=scheduler"
            ])
            .trim_end(),
        "componentstatus/scheduler"
    );
    let missing = server.fails(&["get", "cs", "nope"]);
    assert!(missing.contains("Component not found: nope"), "{missing}");
    let refused = server.fails(&["delete", "cs", "scheduler"]);
    assert!(
        refused.contains("MethodNotAllowed") || refused.contains("not allowed"),
        "{refused}"
    );
}
