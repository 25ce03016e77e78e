//! Strategic merge patch end to end: real kubectl (`apply`, `patch`, `set image`, `rollout
//! restart`, `label`, `annotate`) against a real `rkube server`, which must merge as upstream.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Server {
    child: Child,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
            .args(["--https-port", &testkit::free_port().to_string()])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env_remove("RKUBE_DATASTORE_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let kubeconfig = dir.path().join("data/kubeconfig.yaml");
        let mut server = Server {
            child,
            dir,
            kubeconfig,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(server.kubeconfig.exists() && server.kubectl(&["get", "--raw", "/readyz"]).status.success()) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("rkube server exited with {status}: {}", server.log());
            }
            assert!(Instant::now() < deadline, "not ready: {}", server.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_editor(args, "false")
    }

    /// kubectl with `KUBE_EDITOR` set (for `kubectl edit`).
    fn kubectl_with_editor(&self, args: &[&str], editor: &str) -> Output {
        Command::new("kubectl")
            .env("KUBE_EDITOR", editor)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(["--request-timeout", "10s"])
            .args(args)
            .output()
            .expect("kubectl is installed")
    }

    /// Runs kubectl and returns stdout, failing the test with stderr if it fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "kubectl {args:?} failed: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(!out.status.success(), "kubectl {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `kubectl apply` of a manifest (validated strictly by the server, kubectl's default);
    /// returns stdout.
    fn apply(&self, yaml: &str) -> String {
        let path = self.dir.path().join("manifest.yaml");
        std::fs::write(&path, yaml).unwrap();
        self.ok(&["apply", "-f", path.to_str().unwrap()])
    }

    fn get(&self, what: &str) -> Value {
        serde_json::from_str(&self.ok(&["get", what, "-o", "json"])).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill(); // our own child, by PID
        let _ = self.child.wait();
    }
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
    assert_eq!(server.apply(FIRST), "deployment.apps/web created\n");
    assert_eq!(server.apply(SECOND), "deployment.apps/web configured\n");
    let web = server.get("deploy/web");
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
    assert_eq!(server.apply(SECOND), "deployment.apps/web unchanged\n");
    assert_eq!(server.get("deploy/web")["metadata"]["resourceVersion"], version);
}

#[test]
fn kubectl_patch_set_image_rollout_restart_merge_by_name() {
    let server = Server::start();
    server.apply(FIRST);
    let patch = r#"{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"b"}]}}}}"#;
    assert_eq!(
        server.ok(&["patch", "deploy", "web", "-p", patch]),
        "deployment.apps/web patched\n"
    );
    let web = server.get("deploy/web");
    assert_eq!(containers(&web)[0]["image"], "b");
    assert_eq!(containers(&web)[0]["env"].as_array().unwrap().len(), 2);
    assert_eq!(containers(&web)[1], json!({"name": "b", "image": "busybox"}));

    server.ok(&["set", "image", "deploy/web", "b=busybox:2"]);
    server.ok(&["rollout", "restart", "deploy/web"]);
    let web = server.get("deploy/web");
    assert_eq!(containers(&web)[1]["image"], "busybox:2");
    assert_eq!(containers(&web)[0]["image"], "b");
    let annotations = &web["spec"]["template"]["metadata"]["annotations"];
    assert!(annotations["kubectl.kubernetes.io/restartedAt"].is_string());

    let delete = r#"{"spec":{"template":{"spec":{"containers":[{"name":"b","$patch":"delete"}]}}}}"#;
    server.ok(&["patch", "deploy", "web", "-p", delete]);
    let web = server.get("deploy/web");
    assert_eq!(containers(&web).as_array().unwrap().len(), 1);
    assert_eq!(containers(&web)[0]["name"], "a");

    // kubectl edit sends the difference as a strategic merge patch.
    let edit = server.kubectl_with_editor(
        &["edit", "deploy/web"],
        "sed -i s/image:.b$/&2/", // `image: b` → `image: b2`
    );
    let stderr = String::from_utf8_lossy(&edit.stderr);
    assert!(edit.status.success(), "kubectl edit: {stderr}");
    assert_eq!(containers(&server.get("deploy/web"))[0]["image"], "b2");

    server.ok(&["label", "deploy", "web", "tier-", "l=1"]);
    server.ok(&["annotate", "deploy", "web", "note=x"]);
    let web = server.get("deploy/web");
    assert_eq!(web["metadata"]["labels"], json!({"app": "web", "l": "1"}));
    assert_eq!(web["metadata"]["annotations"]["note"], "x");
}

#[test]
fn strategic_merge_patch_errors_read_as_upstream() {
    let server = Server::start();
    server.apply(FIRST);
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
