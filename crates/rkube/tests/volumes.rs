//! The agent's volume manager and container environment against a real `rkube server`: a pod
//! object (not run) given to `agent::volumes::Volumes` gets its files written (configMap,
//! secret on tmpfs, downwardAPI, projected with a service-account token the server accepts,
//! emptyDir, hostPath), follows a `kubectl edit` of its ConfigMap, reports missing objects in
//! the kubelet's words, and leaves no mounts behind; `agent::env` builds the environment.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent::downward::NodeFacts;
use agent::volumes::{PodVolumes, Volumes};
use common::*;
use k8s_openapi::api::core::v1::Pod;

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ready_server() -> Server {
    let server = Server::start_with_root_ca(&[]);
    wait_until(
        "the default ServiceAccount and root CA",
        Duration::from_secs(20),
        || {
            server.kubectl(&["get", "sa", "default"]).status.success()
                && server
                    .kubectl(&["get", "configmap", "kube-root-ca.crt"])
                    .status
                    .success()
        },
    );
    server
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn fetch_pod(server: &Server, name: &str) -> (kube::Client, Pod) {
    let client = clientkit::from_kubeconfig(&server.kubeconfig).await.unwrap();
    let pod = kube::Api::<Pod>::namespaced(client.clone(), "default")
        .get(name)
        .await
        .unwrap();
    (client, pod)
}

fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect()
}

fn fs_type(path: &Path) -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()))
        .and_then(|l| l.split(" - ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("none")
        .to_owned()
}

fn volume_dir(volumes: &PodVolumes, name: &str) -> PathBuf {
    volumes.volumes[name].host_path.clone()
}

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: vols
  labels: {app: web, tier: "front"}
  annotations: {note: "a \"quoted\" value"}
spec:
  containers:
  - name: c
    image: busybox
    resources:
      limits: {memory: 64Mi}
    env:
    - {name: FROM_CM, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}
    - {name: GREETING_TWICE, value: "$(FROM_CM) $(FROM_CM) $$(FROM_CM) $(NOPE)"}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: sec, key: password}}}
    - {name: OPTIONAL, valueFrom: {configMapKeyRef: {name: absent, key: k, optional: true}}}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: cfg}}
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
    - {name: cfg, mountPath: /one-file, subPath: greeting}
    - {name: sec, mountPath: /sec}
    - {name: info, mountPath: /info}
    - {name: all, mountPath: /all}
    - {name: scratch, mountPath: /scratch}
    - {name: mem, mountPath: /mem}
    - {name: host, mountPath: /host, readOnly: true, mountPropagation: HostToContainer}
    - {name: scratch, mountPath: /per-pod, subPathExpr: "$(POD_NAME)"}
  volumes:
  - name: cfg
    configMap:
      name: cfg
      items: [{key: greeting, path: greeting}, {key: other, path: sub/other, mode: 0600}]
  - name: sec
    secret: {secretName: sec, defaultMode: 0400}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
      - {path: mem, resourceFieldRef: {containerName: c, resource: limits.memory, divisor: 1Mi}}
  - name: all
    projected:
      sources:
      - configMap: {name: cfg, items: [{key: greeting, path: cm-greeting}]}
      - secret: {name: sec}
      - downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}
      - serviceAccountToken: {path: token, expirationSeconds: 3600}
  - name: scratch
    emptyDir: {}
  - name: mem
    emptyDir: {medium: Memory, sizeLimit: 16Mi}
  - name: host
    hostPath: {path: HOSTDIR, type: DirectoryOrCreate}
"#;

#[test]
fn volumes_are_written_follow_their_objects_and_go_away() {
    let server = ready_server();
    server.ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=greeting=hello",
        "--from-literal=other=x",
    ]);
    server.ok(&[
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=password=hunter2",
    ]);
    let host_dir = server.dir.path().join("host/made");
    server.create("pod.yaml", &POD.replace("HOSTDIR", host_dir.to_str().unwrap()));
    let pods_dir = server.dir.path().join("agent/pods");
    let rt = runtime();
    let (client, pod) = rt.block_on(fetch_pod(&server, "vols"));
    let uid = pod.metadata.uid.clone().unwrap();
    let volumes = rt.block_on(async { Volumes::new(client.clone(), pods_dir.clone()) });
    let ready = rt.block_on(volumes.setup(&pod)).unwrap();

    // configMap: on disk, items and modes, the AtomicWriter's layout.
    let cfg = volume_dir(&ready, "cfg");
    assert_eq!(
        cfg,
        pods_dir.join(&uid).join("volumes/kubernetes.io~configmap/cfg")
    );
    assert_eq!(std::fs::read_to_string(cfg.join("greeting")).unwrap(), "hello");
    assert_eq!(std::fs::read_to_string(cfg.join("sub/other")).unwrap(), "x");
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(
        std::fs::metadata(cfg.join("sub/other")).unwrap().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_link(cfg.join("greeting")).unwrap(),
        Path::new("..data/greeting")
    );
    assert_eq!(fs_type(&cfg), "none", "configMap volumes live on disk");
    // secret: tmpfs, defaultMode.
    let sec = volume_dir(&ready, "sec");
    assert_eq!(fs_type(&sec), "tmpfs");
    assert_eq!(std::fs::read_to_string(sec.join("password")).unwrap(), "hunter2");
    assert_eq!(
        std::fs::metadata(sec.join("password")).unwrap().mode() & 0o777,
        0o400
    );
    // downwardAPI.
    let info = volume_dir(&ready, "info");
    assert_eq!(
        std::fs::read_to_string(info.join("labels")).unwrap(),
        "app=\"web\"\ntier=\"front\""
    );
    assert_eq!(
        std::fs::read_to_string(info.join("annotations")).unwrap(),
        "note=\"a \\\"quoted\\\" value\""
    );
    assert_eq!(std::fs::read_to_string(info.join("mem")).unwrap(), "64");
    // projected, with a token the API server accepts as the pod's service account.
    let all = volume_dir(&ready, "all");
    assert_eq!(fs_type(&all), "tmpfs");
    assert_eq!(std::fs::read_to_string(all.join("cm-greeting")).unwrap(), "hello");
    assert_eq!(std::fs::read_to_string(all.join("password")).unwrap(), "hunter2");
    assert_eq!(std::fs::read_to_string(all.join("name")).unwrap(), "vols");
    let token = std::fs::read_to_string(all.join("token")).unwrap();
    let review = server.manifest(
        "review.yaml",
        &format!("apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n"),
    );
    let answer: serde_json::Value =
        serde_json::from_str(&server.ok(&["create", "-f", &review, "-o", "json"])).unwrap();
    assert_eq!(
        answer["status"]["user"]["username"], "system:serviceaccount:default:default",
        "{answer}"
    );
    assert_eq!(
        answer["status"]["user"]["extra"]["authentication.kubernetes.io/pod-uid"][0],
        uid.as_str()
    );
    // The admission-added kube-api-access volume: token, CA, namespace.
    let access = ready
        .volumes
        .keys()
        .find(|k| k.starts_with("kube-api-access-"))
        .expect("the ServiceAccount admission's volume")
        .clone();
    let access = volume_dir(&ready, &access);
    let ca = std::fs::read_to_string(server.dir.path().join("data/tls/ca.crt")).unwrap();
    assert_eq!(std::fs::read_to_string(access.join("ca.crt")).unwrap(), ca);
    assert_eq!(
        std::fs::read_to_string(access.join("namespace")).unwrap(),
        "default"
    );
    assert_eq!(
        std::fs::read_to_string(access.join("token"))
            .unwrap()
            .split('.')
            .count(),
        3
    );
    // emptyDirs and hostPath.
    let mem = volume_dir(&ready, "mem");
    assert_eq!(fs_type(&mem), "tmpfs");
    assert!(
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.contains(mem.to_str().unwrap()) && l.contains("size=16384k")),
        "sizeLimit becomes the tmpfs size"
    );
    assert_eq!(
        std::fs::metadata(volume_dir(&ready, "scratch")).unwrap().mode() & 0o777,
        0o777
    );
    assert!(host_dir.is_dir(), "DirectoryOrCreate made the host directory");
    assert_eq!(volume_dir(&ready, "host"), host_dir);

    // The container's mounts.
    let container = &pod.spec.as_ref().unwrap().containers[0];
    let node = NodeFacts {
        node_name: "n1".into(),
        host_ips: vec!["10.0.0.1".into()],
        ..NodeFacts::default()
    };
    let env = rt
        .block_on(agent::env::container_env(
            volumes.objects(),
            &pod,
            container,
            &node,
            &["10.42.0.9".into()],
        ))
        .unwrap();
    let mounts = volumes.mounts(&pod, container, &ready, &env).unwrap();
    let mount = |path: &str| mounts.iter().find(|m| m.container_path == path).unwrap().clone();
    assert!(mount("/cfg").read_only, "configMap volumes are always read-only");
    assert!(!mount("/scratch").read_only);
    assert!(mount("/host").read_only);
    assert_eq!(mount("/host").propagation, runtime::Propagation::HostToContainer);
    let one_file = mount("/one-file").host_path;
    assert!(one_file.is_file() && one_file.starts_with(&cfg), "{one_file:?}");
    assert_eq!(
        mount("/per-pod").host_path,
        volume_dir(&ready, "scratch").join("vols")
    );

    // The environment.
    let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(var("FROM_CM").as_deref(), Some("hello"));
    assert_eq!(
        var("GREETING_TWICE").as_deref(),
        Some("hello hello $(FROM_CM) $(NOPE)")
    );
    assert_eq!(var("POD_NAME").as_deref(), Some("vols"));
    assert_eq!(var("MEM_MI").as_deref(), Some("64"));
    assert_eq!(var("PASSWORD").as_deref(), Some("hunter2"));
    assert_eq!(var("CFG_greeting").as_deref(), Some("hello"));
    assert_eq!(var("OPTIONAL"), None);
    assert_eq!(var("KUBERNETES_SERVICE_PORT").as_deref(), Some("443"));
    assert!(var("KUBERNETES_SERVICE_HOST").is_some_and(|ip| ip.starts_with("10.43.")));

    // A `kubectl edit` of the ConfigMap reaches the files within seconds; the subPath file
    // keeps its old content, as upstream's.
    let edit = server.kubectl_with_editor(&["edit", "configmap", "cfg"], "sed -i s/hello/bonjour/");
    assert!(edit.status.success(), "{}", String::from_utf8_lossy(&edit.stderr));
    wait_until("the edit to reach the volume", Duration::from_secs(5), || {
        std::fs::read_to_string(cfg.join("greeting")).unwrap() == "bonjour"
            && std::fs::read_to_string(all.join("cm-greeting")).unwrap() == "bonjour"
    });
    assert_eq!(std::fs::read_to_string(&one_file).unwrap_or_default(), "");
    // downwardAPI labels follow the pod when setup sees it again.
    server.ok(&["label", "pod", "vols", "tier=back", "--overwrite"]);
    let (_, relabelled) = rt.block_on(fetch_pod(&server, "vols"));
    rt.block_on(volumes.setup(&relabelled)).unwrap();
    assert_eq!(
        std::fs::read_to_string(info.join("labels")).unwrap(),
        "app=\"web\"\ntier=\"back\""
    );

    // Teardown: no mounts left, the directories gone; twice is fine.
    rt.block_on(volumes.teardown(&uid)).unwrap();
    assert_eq!(mounts_under(&pods_dir), Vec::<String>::new());
    assert!(!pods_dir.join(&uid).join("volumes").exists());
    rt.block_on(volumes.teardown(&uid)).unwrap();
}

#[test]
fn missing_objects_fail_as_the_kubelet_reports_them() {
    let server = ready_server();
    server.create(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: missing\nspec:\n  containers:\n  - name: c\n    image: busybox\n    env:\n    - {name: X, valueFrom: {configMapKeyRef: {name: cfg, key: nokey}}}\n  volumes:\n  - name: gone\n    configMap: {name: nope}\n",
    );
    let rt = runtime();
    let (client, pod) = rt.block_on(fetch_pod(&server, "missing"));
    let pods_dir = server.dir.path().join("agent/pods");
    let volumes = rt.block_on(async { Volumes::new(client, pods_dir.clone()) });
    let err = rt.block_on(volumes.setup(&pod)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"gone\" : configmap \"nope\" not found"
    );
    let container = &pod.spec.as_ref().unwrap().containers[0];
    let node = NodeFacts::default();
    let err = rt
        .block_on(agent::env::container_env(
            volumes.objects(),
            &pod,
            container,
            &node,
            &[],
        ))
        .unwrap_err();
    assert_eq!(err.to_string(), "configmap \"cfg\" not found");
    server.ok(&["create", "configmap", "cfg", "--from-literal=k=v"]);
    // Once the watch has it, the key is what is missing.
    wait_until("the ConfigMap in the cache", Duration::from_secs(5), || {
        let err = rt
            .block_on(agent::env::container_env(
                volumes.objects(),
                &pod,
                container,
                &node,
                &[],
            ))
            .unwrap_err();
        err.to_string() == "couldn't find key nokey in ConfigMap default/cfg"
    });
    // The volume becomes ready once its ConfigMap exists.
    server.ok(&["create", "configmap", "nope", "--from-literal=a=b"]);
    wait_until("the volume to set up", Duration::from_secs(5), || {
        rt.block_on(volumes.setup(&pod)).is_ok()
    });
    let uid = pod.metadata.uid.clone().unwrap();
    rt.block_on(volumes.teardown(&uid)).unwrap();
    assert_eq!(mounts_under(&pods_dir), Vec::<String>::new());
}

#[test]
fn fs_group_and_run_as_user_own_the_files() {
    use std::os::unix::fs::MetadataExt as _;
    let server = ready_server();
    server.ok(&[
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=password=hunter2",
    ]);
    let untyped = server.dir.path().join("untyped/dir");
    let manifest = "apiVersion: v1
kind: Pod
metadata: {name: owned}
spec:
  securityContext: {fsGroup: 2000, runAsUser: 1000}
  containers: [{name: c, image: busybox}]
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: sec, secret: {secretName: sec, defaultMode: 0400}}
  - name: token
    projected: {sources: [{serviceAccountToken: {path: token}}]}
  - {name: untyped, hostPath: {path: UNTYPED}}
";
    server.create(
        "pod.yaml",
        &manifest.replace("UNTYPED", untyped.to_str().unwrap()),
    );
    let rt = runtime();
    let (client, pod) = rt.block_on(fetch_pod(&server, "owned"));
    let pods_dir = server.dir.path().join("agent/pods");
    let volumes = rt.block_on(async { Volumes::new(client, pods_dir.clone()) });
    let ready = rt.block_on(volumes.setup(&pod)).unwrap();
    let scratch = std::fs::metadata(volume_dir(&ready, "scratch")).unwrap();
    assert_eq!((scratch.gid(), scratch.mode() & 0o7777), (2000, 0o2777));
    let secret = std::fs::metadata(volume_dir(&ready, "sec").join("password")).unwrap();
    assert_eq!((secret.gid(), secret.mode() & 0o777), (2000, 0o440));
    let token = std::fs::metadata(volume_dir(&ready, "token").join("token")).unwrap();
    assert_eq!(
        (token.uid(), token.gid(), token.mode() & 0o777),
        (1000, 2000, 0o600)
    );
    assert!(untyped.is_dir(), "a hostPath without a type is made a directory");
    rt.block_on(volumes.teardown(pod.metadata.uid.as_deref().unwrap()))
        .unwrap();
    assert_eq!(mounts_under(&pods_dir), Vec::<String>::new());
}
