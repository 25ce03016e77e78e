//! The client against scripted plugins that record what they were given: the protocol as the
//! spec and libcni define it (environment, request configuration, prevResult chaining, DEL in
//! reverse with the cached result, runtimeConfig, error parsing), without root or networking.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cni::cache::ResultCache;
use cni::chain::Client;
use cni::error::{Command, codes};
use cni::invoke::{Invoker, RuntimeConf};
use cni::{CniError, NetworkConfigList, Options, PodNetworking, PodSandbox, PortMapping, Protocol};
use serde_json::{Value, json};

/// A plugin that appends `{cmd, type, env, stdin}` to `calls.jsonl` next to its plugin dir,
/// and behaves as its config says: `addIp` (ADD adds eth0 with that address), `failOn` +
/// `error` (print that error object), `stderrOn` (fail with only a stderr message),
/// `garbageOn` (print non-JSON), `sleep` (seconds).
const FAKE_PLUGIN: &str = r#"#!/usr/bin/python3
import fcntl, json, os, sys, time
cmd = os.environ.get("CNI_COMMAND", "")
conf = json.load(sys.stdin)
if cmd == "VERSION":
    print(json.dumps({"cniVersion": conf["cniVersion"], "supportedVersions": ["0.4.0", "1.0.0"]}))
    sys.exit(0)
env = {k: v for k, v in os.environ.items() if k.startswith("CNI_")}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "calls.jsonl"), "a") as log:
    fcntl.flock(log, fcntl.LOCK_EX)
    log.write(json.dumps({"cmd": cmd, "type": conf["type"], "env": env, "stdin": conf}) + "\n")
time.sleep(conf.get("sleep", 0))
if conf.get("failOn") == cmd:
    print(json.dumps(conf["error"]))
    sys.exit(1)
if conf.get("stderrOn") == cmd:
    sys.stderr.write("something broke\n")
    sys.exit(1)
if conf.get("garbageOn") == cmd:
    print("not json")
    sys.exit(0)
if cmd == "ADD":
    result = conf.get("prevResult") or {"cniVersion": conf["cniVersion"], "interfaces": [], "ips": []}
    if "addIp" in conf:
        result["interfaces"].append({"name": os.environ["CNI_IFNAME"], "sandbox": os.environ["CNI_NETNS"]})
        result["ips"].append({"address": conf["addIp"], "interface": len(result["interfaces"]) - 1})
    result.setdefault("seenBy", []).append(conf["type"])
    print(json.dumps(result))
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// Plugin dir with the fake installed as `a`, `b`, `c` and `loopback`.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for name in ["a", "b", "c", "loopback"] {
            use std::os::unix::fs::PermissionsExt;
            let path = bin.join(name);
            std::fs::write(&path, FAKE_PLUGIN).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Fixture { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The calls recorded so far.
    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn client(&self) -> Client {
        Client::new(
            Invoker::new(vec![self.path("missing-dir"), self.path("bin")]),
            ResultCache::new(self.path("cache")),
        )
    }

    fn list(&self, plugins: Value) -> NetworkConfigList {
        NetworkConfigList::from_value(json!({"cniVersion": "1.0.0", "name": "testnet", "plugins": plugins}))
            .unwrap()
    }

    fn networking(&self) -> PodNetworking {
        PodNetworking::new(Options {
            plugin_dirs: vec![self.path("bin")],
            conf_dir: self.path("net.d"),
            cache_dir: self.path("cache"),
            plugin_netns: None,
            plugin_timeout: Duration::from_secs(30),
        })
    }

    fn write_conf(&self, plugins: Value) {
        let list = self.list(plugins);
        std::fs::create_dir_all(self.path("net.d")).unwrap();
        std::fs::write(
            self.path("net.d/10-test.conflist"),
            serde_json::to_vec(list.raw()).unwrap(),
        )
        .unwrap();
    }
}

fn rt(netns: &str) -> RuntimeConf {
    let mut rt = RuntimeConf {
        container_id: "sandbox1".into(),
        netns: Some(netns.into()),
        ifname: "eth0".into(),
        args: vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAME".into(), "web".into()),
        ],
        ..RuntimeConf::default()
    };
    rt.capability_args.insert(
        "portMappings".into(),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    rt
}

#[tokio::test]
async fn add_chains_results_and_del_runs_in_reverse_with_the_cached_result() {
    let f = Fixture::new();
    let client = f.client();
    let list = f.list(json!([
        {"type": "a", "addIp": "10.9.0.2/24", "keep": {"nested": [1, 2]}},
        {"type": "b"},
        {"type": "c", "capabilities": {"portMappings": true}},
    ]));
    let rt = rt("/run/netns/pod1");
    let result = client.add(&list, &rt).await.unwrap();
    assert_eq!(result.ips[0].address.to_string(), "10.9.0.2/24");
    assert_eq!(result.raw()["seenBy"], json!(["a", "b", "c"]));

    let calls = f.calls();
    assert_eq!(calls.len(), 3);
    let env = &calls[0]["env"];
    assert_eq!(env["CNI_COMMAND"], "ADD");
    assert_eq!(env["CNI_CONTAINERID"], "sandbox1");
    assert_eq!(env["CNI_NETNS"], "/run/netns/pod1");
    assert_eq!(env["CNI_IFNAME"], "eth0");
    assert_eq!(env["CNI_ARGS"], "IgnoreUnknown=1;K8S_POD_NAME=web");
    assert_eq!(
        env["CNI_PATH"],
        format!("{}:{}", f.path("missing-dir").display(), f.path("bin").display())
    );
    // The first plugin: no prevResult, name and version from the list, its own keys kept,
    // no runtimeConfig (it declares no capability).
    let first = &calls[0]["stdin"];
    assert_eq!(first["name"], "testnet");
    assert_eq!(first["cniVersion"], "1.0.0");
    assert_eq!(first["keep"], json!({"nested": [1, 2]}));
    assert!(first.get("prevResult").is_none() && first.get("runtimeConfig").is_none());
    // Each next plugin gets the previous one's result as printed.
    assert_eq!(calls[1]["stdin"]["prevResult"]["seenBy"], json!(["a"]));
    assert_eq!(calls[2]["stdin"]["prevResult"]["seenBy"], json!(["a", "b"]));
    // runtimeConfig only for the plugin that declares the capability; no capabilities key.
    assert_eq!(
        calls[2]["stdin"]["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
    );
    assert!(calls[2]["stdin"].get("capabilities").is_none());

    client.check(&list, &rt).await.unwrap();
    let checks = &f.calls()[3..];
    assert_eq!(
        checks
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert!(checks.iter().all(|c| c["env"]["CNI_COMMAND"] == "CHECK"
        && c["stdin"]["prevResult"]["seenBy"] == json!(["a", "b", "c"])));

    client.del(&list, &rt).await.unwrap();
    let dels = &f.calls()[6..];
    assert_eq!(
        dels.iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["c", "b", "a"],
        "DEL runs in reverse order"
    );
    assert!(
        dels.iter().all(|c| c["env"]["CNI_COMMAND"] == "DEL"
            && c["stdin"]["prevResult"]["seenBy"] == json!(["a", "b", "c"]))
    );

    // Deleted: CHECK has nothing to check, a second DEL runs without prevResult.
    assert!(matches!(
        client.check(&list, &rt).await,
        Err(CniError::NotSetUp { .. })
    ));
    client.del(&list, &rt).await.unwrap();
    assert!(
        f.calls()[9..]
            .iter()
            .all(|c| c["stdin"].get("prevResult").is_none())
    );
}

#[tokio::test]
async fn plugin_errors_become_typed_errors() {
    let f = Fixture::new();
    let client = f.client();
    let rt = rt("/run/netns/pod1");

    let list = f.list(json!([
        {"type": "a"},
        {"type": "b", "failOn": "ADD", "error": {"cniVersion": "1.0.0", "code": 11, "msg": "busy", "details": "try later"}},
        {"type": "c"},
    ]));
    let err = client.add(&list, &rt).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"plugin type="b" failed (add): busy; try later"#
    );
    assert!(err.is_try_again_later());
    match &err {
        CniError::Plugin { command, error, .. } => {
            assert_eq!(*command, Command::Add);
            assert_eq!(error.details, "try later");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.calls().len(), 2, "the chain stops at the failing plugin");
    assert!(
        matches!(client.check(&list, &rt).await, Err(CniError::NotSetUp { .. })),
        "nothing cached"
    );

    let list = f.list(json!([{"type": "a", "name": "mine", "stderrOn": "ADD"}]));
    let err = client.add(&list, &rt).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"plugin type="a" name="mine" failed (add): netplugin failed: "something broke\n""#
    );

    let list = f.list(json!([{"type": "a", "garbageOn": "ADD"}]));
    let err = client.add(&list, &rt).await.unwrap_err();
    assert!(matches!(err, CniError::InvalidResult { .. }), "{err}");

    let list = f.list(json!([{"type": "a"}, {"type": "nope"}]));
    let err = client.del(&list, &rt).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            r#"failed to find plugin "nope" in path [{} {}]"#,
            f.path("missing-dir").display(),
            f.path("bin").display()
        )
    );

    let list =
        f.list(json!([{"type": "a", "failOn": "DEL", "error": {"code": codes::IO_FAILURE, "msg": "disk"}}]));
    let err = client.del(&list, &rt).await.unwrap_err();
    assert_eq!(err.to_string(), r#"plugin type="a" failed (delete): disk"#);
    assert_eq!(err.code(), Some(codes::IO_FAILURE));

    let bad = RuntimeConf {
        container_id: "has space".into(),
        ..rt.clone()
    };
    let list = f.list(json!([{"type": "a"}]));
    let err = client.add(&list, &bad).await.unwrap_err();
    assert_eq!(err.code(), Some(codes::INVALID_ENVIRONMENT));
}

#[tokio::test]
async fn a_hung_plugin_is_killed_after_the_timeout() {
    let f = Fixture::new();
    let mut client = f.client();
    client.invoker.timeout = Duration::from_millis(500);
    let list = f.list(json!([{"type": "a", "sleep": 30}]));
    let started = std::time::Instant::now();
    let err = client.add(&list, &rt("/x")).await.unwrap_err();
    assert!(matches!(err, CniError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn pod_setup_passes_pod_identity_and_ports_and_teardown_reuses_them() {
    let f = Fixture::new();
    f.write_conf(json!([
        {"type": "a", "addIp": "10.9.0.7/24"},
        {"type": "c", "capabilities": {"portMappings": true}},
    ]));
    let net = f.networking();
    assert_eq!(net.status().await.unwrap().name, "testnet");
    let sandbox = PodSandbox {
        id: "0123abcd".into(),
        namespace: "default".into(),
        name: "web".into(),
        uid: "6f1c…uid".into(),
    };
    let ports = [PortMapping {
        host_port: 8080,
        container_port: 80,
        protocol: Protocol::Tcp,
        host_ip: None,
    }];
    let netns = Path::new("/run/netns/web");
    let pod = net.setup(&sandbox, netns, &ports).await.unwrap();
    assert_eq!(pod.network, "testnet");
    assert_eq!(pod.ips, ["10.9.0.7".parse::<std::net::IpAddr>().unwrap()]);

    let calls = f.calls();
    // Loopback on lo (alongside, a different interface), the pod network on eth0 in order.
    let on = |ifname: &str| -> Vec<&Value> {
        calls
            .iter()
            .filter(|c| c["env"]["CNI_IFNAME"] == ifname)
            .collect()
    };
    let (lo, eth0) = (on("lo"), on("eth0"));
    assert_eq!(calls.len(), 3);
    assert_eq!(
        (lo[0]["type"].as_str(), lo[0]["stdin"]["name"].as_str()),
        (Some("loopback"), Some("cni-loopback"))
    );
    assert_eq!(
        eth0.iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["a", "c"]
    );
    assert_eq!(
        eth0[0]["env"]["CNI_ARGS"],
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=0123abcd;K8S_POD_UID=6f1c…uid"
    );
    assert_eq!(
        eth0[1]["stdin"]["runtimeConfig"]["portMappings"],
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
    );

    // Set up again in the same netns: the existing network, no plugin runs.
    let again = net.setup(&sandbox, netns, &ports).await.unwrap();
    assert_eq!(again, pod);
    assert_eq!(f.calls().len(), 3);
    assert_eq!(net.existing(&sandbox).unwrap(), Some(pod.clone()));

    net.check(&sandbox, netns).await.unwrap();

    // The conf dir changes (another network sorts first): teardown still deletes the network
    // the sandbox was added to, with its port mappings, and the netns may be gone.
    std::fs::write(
        f.path("net.d/05-other.conflist"),
        serde_json::to_vec(&json!({"cniVersion": "1.0.0", "name": "other", "plugins": [{"type": "b"}]}))
            .unwrap(),
    )
    .unwrap();
    let before = f.calls().len();
    net.teardown(&sandbox, None).await.unwrap();
    let dels = &f.calls()[before..];
    let order: Vec<&str> = dels.iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(order, ["c", "a", "loopback"]);
    assert!(
        dels.iter()
            .all(|c| c["stdin"]["name"] != "other" && c["env"]["CNI_NETNS"] == "")
    );
    assert_eq!(
        dels[0]["stdin"]["runtimeConfig"]["portMappings"][0]["hostPort"], 8080,
        "portmap gets its mappings again on DEL"
    );
    assert!(matches!(
        net.check(&sandbox, netns).await,
        Err(CniError::NotSetUp { .. })
    ));

    // Again, and for a sandbox never set up: DEL of today's network, success.
    net.teardown(&sandbox, None).await.unwrap();
    let stranger = PodSandbox {
        id: "never".into(),
        ..sandbox.clone()
    };
    net.teardown(&stranger, Some(Path::new("/run/netns/none")))
        .await
        .unwrap();
    assert!(
        f.calls()[before + 3..]
            .iter()
            .any(|c| c["stdin"]["name"] == "other")
    );
}

#[tokio::test]
async fn failed_setup_deletes_what_it_added() {
    let f = Fixture::new();
    f.write_conf(json!([
        {"type": "a", "addIp": "10.9.0.7/24"},
        {"type": "b", "failOn": "ADD", "error": {"code": 7, "msg": "bad config"}},
    ]));
    let net = f.networking();
    let sandbox = PodSandbox {
        id: "s2".into(),
        namespace: "default".into(),
        name: "web".into(),
        uid: "u".into(),
    };
    let err = net
        .setup(&sandbox, Path::new("/run/netns/s2"), &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(7));
    let cmds: Vec<String> = f
        .calls()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["env"]["CNI_COMMAND"].as_str().unwrap(),
                c["type"].as_str().unwrap()
            )
        })
        .collect();
    let (adds, dels) = cmds.split_at(3);
    let mut adds = adds.to_vec();
    adds.sort();
    assert_eq!(adds, ["ADD a", "ADD b", "ADD loopback"]);
    assert_eq!(dels, ["DEL b", "DEL a", "DEL loopback"]);
    assert_eq!(net.existing(&sandbox).unwrap(), None);
}

#[tokio::test]
async fn status_reports_what_is_missing() {
    let f = Fixture::new();
    let net = f.networking();
    let err = net.status().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no network config found in {}: cni plugin not initialized",
            f.path("net.d").display()
        )
    );
    f.write_conf(json!([{"type": "a"}, {"type": "flannel"}]));
    let err = net.status().await.unwrap_err();
    assert!(
        matches!(err, CniError::PluginNotFound { ref plugin, .. } if plugin == "flannel"),
        "{err}"
    );
    // A version the plugins do not speak.
    std::fs::write(
        f.path("net.d/10-test.conflist"),
        serde_json::to_vec(&json!({"cniVersion": "0.3.1", "name": "n", "plugins": [{"type": "a"}]})).unwrap(),
    )
    .unwrap();
    let err = net.status().await.unwrap_err();
    assert_eq!(err.code(), Some(codes::INCOMPATIBLE_VERSION), "{err}");
}

#[tokio::test]
async fn setup_of_an_id_seen_in_another_netns_releases_the_old_attachment_first() {
    let f = Fixture::new();
    f.write_conf(json!([{"type": "a", "addIp": "10.9.0.7/24"}]));
    let net = f.networking();
    let sandbox = PodSandbox {
        id: "reused".into(),
        namespace: "default".into(),
        name: "web".into(),
        uid: "u".into(),
    };
    net.setup(&sandbox, Path::new("/run/netns/old"), &[])
        .await
        .unwrap();
    let before = f.calls().len();
    let pod = net
        .setup(&sandbox, Path::new("/run/netns/new"), &[])
        .await
        .unwrap();
    assert_eq!(pod.result.interfaces[0].sandbox, "/run/netns/new");
    let cmds: Vec<String> = f.calls()[before..]
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["env"]["CNI_COMMAND"].as_str().unwrap(),
                c["type"].as_str().unwrap(),
                c["env"]["CNI_NETNS"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(&cmds[..2], ["DEL a ", "DEL loopback "]);
    let mut adds = cmds[2..].to_vec();
    adds.sort();
    assert_eq!(adds, ["ADD a /run/netns/new", "ADD loopback /run/netns/new"]);
}
