//! `cargo xtask dev-cluster`: a single-node cluster for trying clients by hand (kubectl, Helm,
//! the official client libraries' own test suites) without touching the host's network: a
//! network namespace of its own (no route out, node address on a veth), a docker registry inside
//! it serving the test images as the `docker.io` mirror, and `rkube server` with its agent.
//! It prints how to run a client inside the namespace and stops everything on Ctrl-C, SIGTERM
//! or end of standard input, deleting the pods first so no container or mount is left behind.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::rkube_process::{self, Process};

const NODE_IP: &str = "172.31.0.1";

#[derive(clap::Args)]
pub struct Args {
    /// Prefix of the network namespace's name (a suffix makes it unique).
    #[arg(long, default_value = "rkube-dev")]
    name: String,
    /// Where the data goes (a temporary directory inside it); defaults to target/dev-cluster.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Use the release build (default: debug).
    #[arg(long)]
    release: bool,
    /// Extra arguments for `rkube server`.
    #[arg(last = true)]
    server_args: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let binary = build(args.release)?;
    let base = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/dev-cluster"));
    std::fs::create_dir_all(&base)?;
    let data = tempfile::Builder::new().prefix("cluster-").tempdir_in(&base)?;
    let root = std::fs::canonicalize(data.path())?;
    let data_dir = root.join("data");

    // Everything from here runs in the namespace: threads and children inherit it.
    let netns = testkit::netns::NetNs::create(&args.name)?;
    netns.add_interface("node0", &format!("{NODE_IP}/24"))?;
    netns.enter()?;

    let registry = testkit::registry::DockerRegistry::start()?;
    // Also under the tags official clients' e2e suites name (kube-rs: busybox:stable; the
    // Python client: nginx:1.15.4), so their pods start from the mirror too.
    for (file, name) in [
        ("busybox-oci.tar", "library/busybox:latest"),
        ("busybox-oci.tar", "library/busybox:stable"),
        ("nginx-oci.tar", "library/nginx:latest"),
        ("nginx-oci.tar", "library/nginx:1.15.4"),
        ("python-oci.tar", "library/python:latest"),
    ] {
        let path = rkube_process::test_image(file)?;
        registry.push(&format!("oci-archive:{}", path.display()), name)?;
    }
    let registries = root.join("registries.yaml");
    std::fs::write(
        &registries,
        format!(
            "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n",
            registry.host()
        ),
    )?;

    let port = testkit::free_port().to_string();
    let server = Process(
        Command::new(&binary)
            .args(["server", "--bind-address", "127.0.0.1", "--https-port", &port])
            .args(["--node-name", "node-1", "--node-ip", NODE_IP])
            .args(["--eviction-hard", "nodefs.available<1%", "--dns-upstream", "none"])
            .arg("--private-registry")
            .arg(&registries)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&args.server_args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("server.log"))?)
            .spawn()
            .context("cannot start rkube server")?,
    );
    let kubeconfig = data_dir.join("kubeconfig.yaml");
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .args(args)
            .output()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = kubectl(&["wait", "--for=condition=Ready", "node/node-1", "--timeout=5s"]);
        if out.is_ok_and(|o| o.status.success()) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "node-1 not Ready after 60 s; see {}",
            root.join("server.log").display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("cluster ready (server log: {}/server.log)", root.display());
    println!("run clients inside its network namespace:");
    println!(
        "  nsenter --net={} env KUBECONFIG={} kubectl get nodes",
        netns.path().display(),
        kubeconfig.display()
    );
    println!(
        "images: docker.io/library/{{busybox,nginx,python}}:latest, busybox:stable, nginx:1.15.4 (from the local mirror)"
    );
    println!("stop with Ctrl-C, SIGTERM or end of input");

    wait_for_stop()?;
    eprintln!("stopping: deleting namespaces' workloads and pods");
    let _ = kubectl(&["delete", "all", "--all", "-A", "--wait=false"]);
    // Controllers may still be creating pods while their owners go: repeat until none is left,
    // so no container or mount outlives the agent.
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let _ = kubectl(&[
            "delete",
            "pods",
            "--all",
            "-A",
            "--grace-period=1",
            "--wait=false",
        ]);
        let left = kubectl(&["get", "pods", "-A", "-o", "name"]);
        if left.is_ok_and(|o| o.status.success() && o.stdout.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(server);
    drop(registry);
    drop(netns);
    Ok(())
}

fn build(release: bool) -> anyhow::Result<PathBuf> {
    if release {
        return rkube_process::build_release();
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "rkube"])
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("building rkube failed");
    }
    Ok(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/rkube"))
}

/// Blocks until SIGINT, SIGTERM or end of standard input.
fn wait_for_stop() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while stdin.read(&mut sink).is_ok_and(|n| n > 0) {}
        });
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = stdin_closed => {}
        }
        anyhow::Ok(())
    })
}
