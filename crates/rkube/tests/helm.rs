//! Real Helm against rkube: `helm create`'s chart (nginx, its Service and its `helm test` pod)
//! plus a CRD in `crds/` with a custom resource of it and a pre-install hook pod, driven
//! through lint, template, install (--wait --atomic --create-namespace), upgrade (--set,
//! --reuse-values, --force), history, rollback, status, get, test, --dry-run=server, list and
//! uninstall (--keep-history, then for good). Pods really run (`common::pods`: the server's own
//! node in a network namespace of the test's, images from the local registry mirror).
//!
//! Helm 3 is `helm` on PATH, Helm 4 (server-side apply by default) `helm4`; scripts/install-deps
//! installs both.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::pods::PodCluster;

const NS: &str = "demo-ns";

/// A helm binary with its own config, cache and data dirs, against the cluster's kubeconfig.
struct Helm<'a> {
    cluster: &'a PodCluster,
    binary: String,
    home: PathBuf,
}

impl Helm<'_> {
    fn new<'a>(cluster: &'a PodCluster, binary: &str) -> Helm<'a> {
        let binary = binary.to_owned();
        let home = cluster.server.dir.path().join("helm");
        std::fs::create_dir_all(&home).unwrap();
        Helm {
            cluster,
            binary,
            home,
        }
    }

    /// Whether this is Helm 4 (server-side apply by default; `--force` is force-replace there,
    /// which it refuses together with server-side apply).
    fn is_v4(&self) -> bool {
        self.ok(&["version", "--short"]).starts_with("v4.")
    }

    fn command(&self, args: &[&str]) -> Command {
        // A bound on every helm run: a hang fails the test instead of the CI job.
        let mut command = Command::new("timeout");
        command
            .arg("300")
            .arg(&self.binary)
            .args(args)
            .current_dir(&self.home)
            .env("KUBECONFIG", &self.cluster.server.kubeconfig)
            .env("HELM_CONFIG_HOME", self.home.join("config"))
            .env("HELM_CACHE_HOME", self.home.join("cache"))
            .env("HELM_DATA_HOME", self.home.join("data"));
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("helm is installed")
    }

    /// Runs helm and returns stdout; fails the test with helm's stderr, the pods and the
    /// server log if it fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        if !out.status.success() {
            panic!(
                "helm {args:?} failed ({}): {}{}\n--- pods ---\n{}\n--- server log (tail) ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&self.cluster.server.kubectl(&["get", "all,events", "-A"]).stdout),
                tail(&self.cluster.server.log(), 60)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn chart(&self) -> PathBuf {
        self.home.join("demo")
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.demo.example.com
spec:
  group: demo.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
"#;

const WIDGET: &str = r#"apiVersion: demo.example.com/v1
kind: Widget
metadata:
  name: {{ include "demo.fullname" . }}
spec:
  size: {{ .Values.widgetSize }}
"#;

/// Runs before install and upgrade; deleted once it succeeded (and before it is made again).
/// A Pod, not a Job: rkube has no Job controller yet, and Helm waits for a hook Job to complete.
const HOOK: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: {{ include "demo.fullname" . }}-pre
  annotations:
    "helm.sh/hook": pre-install,pre-upgrade
    "helm.sh/hook-weight": "-5"
    "helm.sh/hook-delete-policy": before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  containers:
  - name: pre
    image: docker.io/library/busybox:latest
    command: ["sh", "-c", "echo pre-hook"]
"#;

/// `helm create demo`, pointed at the mirrored nginx, with the CRD, a Widget and the hook.
fn create_chart(helm: &Helm) {
    helm.ok(&["create", "demo"]);
    let chart = helm.chart();
    let values = std::fs::read_to_string(chart.join("values.yaml")).unwrap();
    let values = values
        .replace("repository: nginx", "repository: docker.io/library/nginx")
        .replace("tag: \"\"", "tag: \"latest\"")
        + "widgetSize: 3\n";
    write(&chart.join("values.yaml"), &values);
    std::fs::create_dir_all(chart.join("crds")).unwrap();
    write(&chart.join("crds/widgets.yaml"), CRD);
    write(&chart.join("templates/widget.yaml"), WIDGET);
    write(&chart.join("templates/pre-install-hook.yaml"), HOOK);
}

fn deployment_field(cluster: &PodCluster, path: &str) -> String {
    cluster.server.ok(&[
        "get",
        "deployment",
        "-n",
        NS,
        "demo",
        "-o",
        &format!("jsonpath={path}"),
    ])
}

/// Names of the objects of these kinds in the namespace (`kind/name` lines).
fn names(cluster: &PodCluster, kinds: &str) -> String {
    cluster.server.ok(&["get", kinds, "-n", NS, "-o", "name"])
}

#[test]
fn helm3_chart_lifecycle() {
    chart_lifecycle("helm");
}

#[test]
fn helm4_chart_lifecycle() {
    chart_lifecycle("helm4");
}

fn chart_lifecycle(binary: &str) {
    let cluster = PodCluster::start();
    let helm = Helm::new(&cluster, binary);
    create_chart(&helm);
    let chart = helm.chart();
    let chart = chart.to_str().unwrap();

    helm.ok(&["lint", chart]);
    let rendered = helm.ok(&["template", "demo", chart, "-n", NS]);
    assert!(rendered.contains("kind: Deployment"), "{rendered}");
    assert!(
        rendered.contains("image: \"docker.io/library/nginx:latest\""),
        "{rendered}"
    );

    // Install: the CRD first, the hook Job runs and is deleted, then everything else, ready.
    let out = helm.ok(&[
        "install",
        "demo",
        chart,
        "-n",
        NS,
        "--create-namespace",
        "--wait",
        "--atomic",
        "--timeout",
        "3m",
    ]);
    assert!(out.contains("STATUS: deployed"), "{out}");
    cluster.server.ok(&["get", "crd", "widgets.demo.example.com"]);
    assert_eq!(
        cluster
            .server
            .ok(&["get", "widget", "-n", NS, "demo", "-o", "jsonpath={.spec.size}"]),
        "3"
    );
    assert!(
        !names(&cluster, "pods").contains("pod/demo-pre"),
        "the hook pod is deleted once it succeeded"
    );
    assert_eq!(deployment_field(&cluster, "{.status.readyReplicas}"), "1");

    let status = helm.ok(&["status", "demo", "-n", NS]);
    assert!(
        status.contains("STATUS: deployed") && status.contains("REVISION: 1"),
        "{status}"
    );
    let manifest = helm.ok(&["get", "manifest", "demo", "-n", NS]);
    assert!(
        manifest.contains("kind: Widget") && manifest.contains("kind: Service"),
        "{manifest}"
    );

    // Upgrades: a value, then --reuse-values keeps it while adding another, then --force.
    helm.ok(&[
        "upgrade",
        "demo",
        chart,
        "-n",
        NS,
        "--set",
        "replicaCount=2",
        "--set",
        "widgetSize=5",
        "--wait",
        "--timeout",
        "3m",
    ]);
    assert_eq!(deployment_field(&cluster, "{.spec.replicas}"), "2");
    assert_eq!(deployment_field(&cluster, "{.status.readyReplicas}"), "2");
    assert_eq!(
        cluster
            .server
            .ok(&["get", "widget", "-n", NS, "demo", "-o", "jsonpath={.spec.size}"]),
        "5"
    );
    helm.ok(&[
        "upgrade",
        "demo",
        chart,
        "-n",
        NS,
        "--reuse-values",
        "--set",
        "podAnnotations.x=y",
        "--wait",
        "--timeout",
        "3m",
    ]);
    assert_eq!(deployment_field(&cluster, "{.spec.replicas}"), "2");
    assert_eq!(
        deployment_field(&cluster, "{.spec.template.metadata.annotations.x}"),
        "y"
    );
    let values = helm.ok(&["get", "values", "demo", "-n", NS]);
    assert!(
        values.contains("replicaCount: 2") && values.contains("x: \"y\""),
        "{values}"
    );
    // Helm 4 forces server-side apply over conflicts; Helm 3 replaces the objects.
    let force = if helm.is_v4() {
        "--force-conflicts"
    } else {
        "--force"
    };
    helm.ok(&[
        "upgrade",
        "demo",
        chart,
        "-n",
        NS,
        "--reuse-values",
        force,
        "--wait",
        "--timeout",
        "3m",
    ]);
    assert_eq!(deployment_field(&cluster, "{.spec.replicas}"), "2");
    let history = helm.ok(&["history", "demo", "-n", NS]);
    assert_eq!(
        history.lines().count(),
        5,
        "a header and four revisions: {history}"
    );
    assert!(history.contains("Upgrade complete"), "{history}");

    // Rollback to revision 1: the Deployment's spec really goes back.
    helm.ok(&["rollback", "demo", "1", "-n", NS, "--wait", "--timeout", "3m"]);
    assert_eq!(deployment_field(&cluster, "{.spec.replicas}"), "1");
    assert_eq!(
        deployment_field(&cluster, "{.spec.template.metadata.annotations}"),
        ""
    );
    assert_eq!(
        cluster
            .server
            .ok(&["get", "widget", "-n", NS, "demo", "-o", "jsonpath={.spec.size}"]),
        "3"
    );
    let status = helm.ok(&["status", "demo", "-n", NS]);
    assert!(status.contains("REVISION: 5"), "{status}");
    let values = helm.ok(&["get", "values", "demo", "-n", NS, "--all"]);
    assert!(values.contains("replicaCount: 1"), "{values}");

    // helm test: the chart's busybox pod wgets the Service by its cluster DNS name.
    let out = helm.ok(&["test", "demo", "-n", NS, "--timeout", "3m"]);
    assert!(out.contains("Phase:          Succeeded"), "{out}");

    // A server-side dry run creates nothing.
    let out = helm.ok(&["install", "demo2", chart, "-n", NS, "--dry-run=server"]);
    assert!(out.contains("kind: Deployment"), "{out}");
    assert!(!names(&cluster, "deployments").contains("demo2"));

    let list = helm.ok(&["list", "-A"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("demo") && l.contains("deployed")),
        "{list}"
    );

    // Uninstall keeping history, then for good: what the release made goes, pods included.
    helm.ok(&[
        "uninstall",
        "demo",
        "-n",
        NS,
        "--keep-history",
        "--wait",
        "--timeout",
        "3m",
    ]);
    let list = helm.ok(&["list", "-n", NS, "--uninstalled"]);
    assert!(list.contains("uninstalled"), "{list}");
    helm.ok(&["uninstall", "demo", "-n", NS, "--wait", "--timeout", "3m"]);
    assert_eq!(helm.ok(&["list", "-A", "-q"]), "");
    assert_eq!(helm.ok(&["list", "-A", "-q", "--uninstalled"]), "");
    cluster.wait_for(
        "the release's objects to be gone",
        Duration::from_secs(60),
        || {
            names(
                &cluster,
                "deployments,replicasets,pods,services,serviceaccounts,jobs,widgets,secrets",
            )
            .lines()
            // Helm leaves hook resources (the test pod, which succeeded) to their delete policy.
            .all(|l| l == "serviceaccount/default" || l == "pod/demo-test-connection")
        },
    );
    assert_eq!(
        cluster.server.ok(&[
            "get",
            "pod",
            "-n",
            NS,
            "demo-test-connection",
            "-o",
            "jsonpath={.status.phase}"
        ]),
        "Succeeded"
    );
}
