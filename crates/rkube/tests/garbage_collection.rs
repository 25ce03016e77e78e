//! Deletion propagation end to end, with real kubectl against a child `rkube server` running
//! its controllers: the garbage collector (background, orphan and foreground propagation,
//! dangling owners), the namespace controller, the ServiceAccount controller and the pod
//! garbage collector.

mod common;

use std::time::{Duration, Instant};

use common::Server;

/// Polls `check` until it holds (or fails the test after `seconds`).
fn eventually(seconds: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn exists(server: &Server, args: &[&str]) -> bool {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    server.kubectl(&all).status.success()
}

fn uid(server: &Server, ns: &str, kind: &str, name: &str) -> String {
    server.ok(&["get", kind, name, "-n", ns, "-o", "jsonpath={.metadata.uid}"])
}

/// A ConfigMap owned by `owner` (a ConfigMap with `owner_uid`).
fn dependent(ns: &str, name: &str, owner: &str, owner_uid: &str, extra_meta: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n{extra_meta}  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {owner_uid}\n    blockOwnerDeletion: true\ndata:\n  k: v\n"
    )
}

fn owner_with_dependents(server: &Server, ns: &str, names: &[&str], extra_meta: &str) {
    server.ok(&["create", "configmap", "owner", "-n", ns]);
    let owner_uid = uid(server, ns, "cm", "owner");
    for name in names {
        server.create(
            &format!("{ns}-{name}.yaml"),
            &dependent(ns, name, "owner", &owner_uid, extra_meta),
        );
    }
}

#[test]
fn background_deletion_collects_dependents() {
    let server = Server::start();
    server.ok(&["create", "namespace", "bg"]);
    owner_with_dependents(&server, "bg", &["child-a", "child-b"], "");
    server.ok(&["delete", "cm", "owner", "-n", "bg"]);
    eventually(30, "dependents to be collected", || {
        !exists(&server, &["cm", "child-a", "-n", "bg"]) && !exists(&server, &["cm", "child-b", "-n", "bg"])
    });
}

#[test]
fn orphan_deletion_keeps_dependents_without_the_reference() {
    let server = Server::start();
    server.ok(&["create", "namespace", "orphan"]);
    owner_with_dependents(&server, "orphan", &["child"], "");
    // kubectl waits until the owner is gone, which needs the collector to drop `orphan`.
    server.ok(&[
        "delete",
        "cm",
        "owner",
        "-n",
        "orphan",
        "--cascade=orphan",
        "--timeout=60s",
    ]);
    assert!(!exists(&server, &["cm", "owner", "-n", "orphan"]));
    let refs = server.ok(&[
        "get",
        "cm",
        "child",
        "-n",
        "orphan",
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert_eq!(refs.trim(), "", "owner reference removed");
    // Still there a while later.
    std::thread::sleep(Duration::from_secs(2));
    assert!(exists(&server, &["cm", "child", "-n", "orphan"]));
}

#[test]
fn foreground_deletion_waits_for_blocking_dependents() {
    let server = Server::start();
    server.ok(&["create", "namespace", "fg"]);
    // The dependent is held by a finalizer of its own, so the owner must wait for it.
    owner_with_dependents(&server, "fg", &["child"], "  finalizers: [example.com/hold]\n");
    server.ok(&[
        "delete",
        "cm",
        "owner",
        "-n",
        "fg",
        "--cascade=foreground",
        "--wait=false",
    ]);
    let owner = server.ok(&[
        "get",
        "cm",
        "owner",
        "-n",
        "fg",
        "-o",
        "jsonpath={.metadata.finalizers} {.metadata.deletionTimestamp}",
    ]);
    assert!(owner.starts_with("[\"foregroundDeletion\"] 20"), "{owner}");
    eventually(30, "the dependent to be deleted", || {
        let ts = server.ok(&[
            "get",
            "cm",
            "child",
            "-n",
            "fg",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ]);
        !ts.trim().is_empty()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        exists(&server, &["cm", "owner", "-n", "fg"]),
        "blocked by its dependent"
    );
    server.ok(&[
        "patch",
        "cm",
        "child",
        "-n",
        "fg",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    eventually(30, "the owner to go", || {
        !exists(&server, &["cm", "owner", "-n", "fg"])
    });
    assert!(!exists(&server, &["cm", "child", "-n", "fg"]));
}

#[test]
fn dangling_owner_reference_is_collected() {
    let server = Server::start();
    server.ok(&["create", "namespace", "dangling"]);
    server.ok(&["create", "configmap", "real-owner", "-n", "dangling"]);
    let real = uid(&server, "dangling", "cm", "real-owner");
    server.create(
        "ghost.yaml",
        &dependent(
            "dangling",
            "orphaned",
            "ghost",
            "0d6c1c4e-0000-4000-8000-000000000000",
            "",
        ),
    );
    // A reference with the right name but another uid is dangling too.
    server.create(
        "stale.yaml",
        &dependent(
            "dangling",
            "stale",
            "real-owner",
            "0d6c1c4e-0000-4000-8000-000000000001",
            "",
        ),
    );
    server.create(
        "kept.yaml",
        &dependent("dangling", "kept", "real-owner", &real, ""),
    );
    eventually(30, "dangling dependents to be collected", || {
        !exists(&server, &["cm", "orphaned", "-n", "dangling"])
            && !exists(&server, &["cm", "stale", "-n", "dangling"])
    });
    assert!(exists(&server, &["cm", "kept", "-n", "dangling"]));
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

#[test]
fn deleting_a_namespace_removes_everything_in_it() {
    let server = Server::start();
    server.create("crd.yaml", CRD);
    server.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=30s",
    ]);
    server.ok(&["create", "namespace", "doomed"]);
    let spec = server.ok(&["get", "ns", "doomed", "-o", "jsonpath={.spec.finalizers}"]);
    assert_eq!(spec.trim(), "[\"kubernetes\"]");
    server.ok(&["create", "configmap", "cm", "-n", "doomed"]);
    server.ok(&["create", "secret", "generic", "s", "-n", "doomed"]);
    server.create(
        "widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: doomed\n",
    );
    server.ok(&["delete", "namespace", "doomed", "--wait=false"]);
    let phase = server.ok(&["get", "ns", "doomed", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase.trim(), "Terminating");
    let err = server.fails(&["create", "configmap", "late", "-n", "doomed"]);
    assert!(err.contains("because it is being terminated"), "{err}");
    server.ok(&["wait", "--for=delete", "namespace/doomed", "--timeout=60s"]);
    // Nothing of it is left, custom resources included, and the name is free again.
    server.ok(&["create", "namespace", "doomed"]);
    for kind in ["cm/cm", "secret/s", "widgets/w"] {
        assert!(!exists(&server, &[kind, "-n", "doomed"]), "{kind} survived");
    }
}

#[test]
fn namespace_conditions_report_remaining_finalizers() {
    let server = Server::start();
    server.ok(&["create", "namespace", "held"]);
    server.create(
        "held.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: held\n  finalizers: [example.com/hold]\n",
    );
    server.ok(&["delete", "namespace", "held", "--wait=false"]);
    let jsonpath = "jsonpath={.status.conditions[?(@.type==\"NamespaceFinalizersRemaining\")].message}";
    eventually(40, "the NamespaceFinalizersRemaining condition", || {
        server.ok(&["get", "ns", "held", "-o", jsonpath]).trim()
            == "Some finalizers are remaining: example.com/hold in 1 resource instances"
    });
    let remaining = server.ok(&[
        "get",
        "ns",
        "held",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"NamespaceContentRemaining\")].reason}",
    ]);
    assert_eq!(remaining.trim(), "SomeResourcesRemain");
    server.ok(&[
        "patch",
        "cm",
        "held",
        "-n",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    server.ok(&["wait", "--for=delete", "namespace/held", "--timeout=60s"]);
}

#[test]
fn finalize_subresource_releases_a_namespace() {
    let server = Server::start_with(&["--controllers=*,-namespace-controller"]);
    server.ok(&["create", "namespace", "manual"]);
    // spec.finalizers change only through finalize.
    server.ok(&[
        "patch",
        "ns",
        "manual",
        "--type=merge",
        "-p",
        r#"{"spec":{"finalizers":[]}}"#,
    ]);
    let spec = server.ok(&["get", "ns", "manual", "-o", "jsonpath={.spec.finalizers}"]);
    assert_eq!(spec.trim(), "[\"kubernetes\"]");
    server.ok(&["delete", "namespace", "manual", "--wait=false"]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        exists(&server, &["ns", "manual"]),
        "held by the kubernetes finalizer"
    );
    let body =
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"manual"},"spec":{"finalizers":[]}}"#;
    let file = server.file("finalize.json", body.as_bytes());
    server.ok(&[
        "replace",
        "--raw",
        "/api/v1/namespaces/manual/finalize",
        "-f",
        &file,
    ]);
    assert!(!exists(&server, &["ns", "manual"]));
}

#[test]
fn every_namespace_gets_a_default_service_account() {
    let server = Server::start();
    server.ok(&["create", "namespace", "fresh"]);
    eventually(20, "the default ServiceAccount", || {
        exists(&server, &["sa", "default", "-n", "fresh"])
    });
    server.ok(&["delete", "sa", "default", "-n", "fresh"]);
    eventually(20, "the default ServiceAccount to come back", || {
        exists(&server, &["sa", "default", "-n", "fresh"])
    });
    assert!(exists(&server, &["sa", "default", "-n", "default"]));
}

fn pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  nodeName: \"{node}\"\n  containers:\n  - name: c\n    image: busybox\n"
    )
}

#[test]
fn pod_gc_deletes_terminated_pods_above_the_threshold_oldest_first() {
    let server = Server::start_with(&["--terminated-pod-gc-threshold=1"]);
    for name in ["first", "second", "third"] {
        server.create(&format!("{name}.yaml"), &pod(name, ""));
        server.ok(&[
            "patch",
            "pod",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Succeeded"}}"#,
        ]);
        // Distinct creation timestamps (second precision).
        std::thread::sleep(Duration::from_millis(1100));
    }
    eventually(45, "the two oldest terminated pods to go", || {
        !exists(&server, &["pod", "first"]) && !exists(&server, &["pod", "second"])
    });
    assert!(exists(&server, &["pod", "third"]));
}

#[test]
fn pod_gc_deletes_pods_bound_to_missing_nodes() {
    let server = Server::start();
    server.create("lost.yaml", &pod("lost", "no-such-node"));
    // 40 s of quarantine, checked every 20 s.
    eventually(90, "the orphaned pod to go", || {
        !exists(&server, &["pod", "lost"])
    });
}

#[test]
fn jobs_orphan_their_pods_by_default_with_a_warning() {
    let server = Server::start();
    server.ok(&["create", "job", "j", "--image=busybox"]);
    let out = server.kubectl(&["delete", "--raw", "/apis/batch/v1/namespaces/default/jobs/j"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Warning: child pods are preserved by default when jobs are deleted"),
        "{stderr}"
    );
    // The orphan finalizer the default added is removed by the collector, then the Job goes.
    eventually(30, "the job to go", || !exists(&server, &["job", "j"]));
}

#[test]
fn foreground_deletion_goes_through_grandchildren() {
    let server = Server::start();
    server.ok(&["create", "namespace", "chain"]);
    owner_with_dependents(&server, "chain", &["child"], "");
    let child_uid = uid(&server, "chain", "cm", "child");
    server.create(
        "grandchild.yaml",
        &dependent(
            "chain",
            "grandchild",
            "child",
            &child_uid,
            "  finalizers: [example.com/hold]\n",
        ),
    );
    server.ok(&[
        "delete",
        "cm",
        "owner",
        "-n",
        "chain",
        "--cascade=foreground",
        "--wait=false",
    ]);
    // The child has dependents of its own, so it is deleted in the foreground too.
    eventually(30, "the child to wait for the grandchild", || {
        server
            .ok(&[
                "get",
                "cm",
                "child",
                "-n",
                "chain",
                "-o",
                "jsonpath={.metadata.finalizers}",
            ])
            .contains("foregroundDeletion")
    });
    assert!(exists(&server, &["cm", "owner", "-n", "chain"]));
    server.ok(&[
        "patch",
        "cm",
        "grandchild",
        "-n",
        "chain",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    eventually(30, "the whole chain to go", || {
        ["owner", "child", "grandchild"]
            .iter()
            .all(|name| !exists(&server, &["cm", name, "-n", "chain"]))
    });
}
