//! Limits that protect the server, end to end: real kubectl against a real `rkube server`.
//! Bodies over 3 MiB get upstream's 413; malformed, mistyped or too deeply nested bodies and
//! patches get a 4xx Status; and the server keeps serving after every one of them.

mod common;

use common::Server;
use serde_json::{Value, json};

fn configmap(name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
           "data": {"k": data}})
}

#[test]
fn bodies_over_3_mib_get_413_request_entity_too_large() {
    let mut server = Server::start();
    let big = configmap("big", &"x".repeat(3 * 1024 * 1024));
    let path = server.file("big.json", &serde_json::to_vec(&big).unwrap());
    let err = server.fails(&["create", "-f", &path]);
    assert!(
        err.contains("Error from server (RequestEntityTooLarge)")
            && err.contains("Request entity too large: limit is 3145728"),
        "{err}"
    );
    // The same for a replace of an existing object and for a patch body.
    server.ok(&[
        "create",
        "-f",
        &server.file("small.json", &serde_json::to_vec(&configmap("big", "1")).unwrap()),
    ]);
    let err = server.fails(&["replace", "-f", &path]);
    assert!(
        err.contains("Request entity too large: limit is 3145728"),
        "{err}"
    );
    let patch = json!({"data": {"k": "y".repeat(3 * 1024 * 1024)}}).to_string();
    let patch_file = server.file("patch.json", patch.as_bytes());
    let err = server.fails(&[
        "patch",
        "configmap",
        "big",
        "-n",
        "default",
        "--type",
        "merge",
        "--patch-file",
        &patch_file,
    ]);
    assert!(
        err.contains("Request entity too large: limit is 3145728"),
        "{err}"
    );
    // Just under the limit is read (and stored: no etcd request limit here). Not a ConfigMap:
    // those are refused past 1 MiB of data by validation, as upstream's.
    let under = json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "under", "namespace": "default"},
        "template": {"spec": {"containers": [{"name": "c", "image": "i", "args": ["x".repeat(3 * 1024 * 1024 - 400)]}]}}});
    server.ok(&[
        "create",
        "-f",
        &server.file("under.json", &serde_json::to_vec(&under).unwrap()),
    ]);
    server.assert_serving();
}

#[test]
fn malformed_mistyped_and_deep_bodies_get_400_and_the_server_keeps_serving() {
    let mut server = Server::start();
    let create_raw = |name: &str, body: &[u8]| {
        let path = server.file(name, body);
        server.fails(&[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
            "-f",
            &path,
        ])
    };
    let err = create_raw(
        "malformed.json",
        br#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"#,
    );
    assert!(err.contains("Error from server (BadRequest)"), "{err}");
    let err = create_raw(
        "kind.json",
        br#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}}"#,
    );
    assert!(
        err.contains("Error from server (BadRequest)") && err.contains("Secret"),
        "{err}"
    );
    let err = create_raw(
        "version.json",
        br#"{"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "a"}}"#,
    );
    assert!(
        err.contains("Error from server (BadRequest)") && err.contains("v2"),
        "{err}"
    );
    // Nesting deeper than a JSON decoder goes: a clear 400, not a crashed worker.
    let deep = format!(
        r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "deep"}}, "x": {}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = create_raw("deep.json", deep.as_bytes());
    assert!(
        err.contains("Error from server (BadRequest)") && err.contains("recursion limit exceeded"),
        "{err}"
    );

    // Patches: a merge patch that is no object, a JSON patch leaving no object, one that
    // would nest the object deeper than it can be read back, one copying past upstream's limit.
    server.ok(&[
        "create",
        "-f",
        &server.file("cm.json", &serde_json::to_vec(&configmap("cm", "v")).unwrap()),
    ]);
    let patch = |kind: &str, body: &str| {
        server.fails(&[
            "patch",
            "configmap",
            "cm",
            "-n",
            "default",
            "--type",
            kind,
            "-p",
            body,
        ])
    };
    let err = patch("merge", "5");
    assert!(
        err.contains("Error from server (BadRequest)") && err.contains("Invalid JSON Patch"),
        "{err}"
    );
    let err = patch("json", r#"[{"op": "replace", "path": "", "value": 1}]"#);
    assert!(
        err.contains("The request is invalid: patch: Invalid value: \"1\": couldn't get version/kind")
            && err.contains("cannot unmarshal number"),
        "{err}"
    );
    let deep_value = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let deep_path = "/0".repeat(60);
    let ops = format!(
        r#"[{{"op": "add", "path": "/a", "value": {deep_value}}}, {{"op": "add", "path": "/a{deep_path}", "value": {deep_value}}}]"#
    );
    let err = patch("json", &ops);
    assert!(err.contains("nest deeper than 127 levels"), "{err}");
    let mut copies = vec![json!({"op": "add", "path": "/data/k", "value": "x".repeat(50_000)})];
    copies.extend((0..40).map(|i| json!({"op": "copy", "from": "/data", "path": format!("/data/c{i}")})));
    let err = patch("json", &Value::Array(copies).to_string());
    assert!(err.contains("Unable to complete the copy"), "{err}");
    server.assert_serving();
    assert_eq!(
        server.ok(&[
            "get",
            "configmap",
            "cm",
            "-n",
            "default",
            "-o",
            "jsonpath={.data.k}"
        ]),
        "v"
    );
}
