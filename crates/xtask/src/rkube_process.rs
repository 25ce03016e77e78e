//! What the benchmarks that run a real `rkube` process share: building the release binary,
//! connecting kube-rs once the server answers, and creating many objects concurrently.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::Client;
use kube::api::{Api, PostParams};

/// A child process of ours, stopped by PID when dropped.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A test image archive built by `scripts/build-test-images` (`busybox-oci.tar`, …).
pub fn test_image(file: &str) -> anyhow::Result<PathBuf> {
    let image = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-images")
        .join(file);
    anyhow::ensure!(
        image.is_file(),
        "{} is missing: run scripts/build-test-images",
        image.display()
    );
    Ok(image)
}

/// Builds `target/release/rkube` and returns its path.
pub fn build_release() -> anyhow::Result<PathBuf> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "rkube"])
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("building rkube failed");
    }
    Ok(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/rkube"))
}

/// A client for the server whose kubeconfig is (or will be) at `kubeconfig`, once it answers
/// (within 30 s); requests may take up to `read_timeout`.
pub async fn connect(kubeconfig: &Path, read_timeout: Duration) -> anyhow::Result<Client> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(config) = kube::config::Kubeconfig::read_from(kubeconfig) {
            let mut config = kube::Config::from_custom_kubeconfig(config, &Default::default()).await?;
            config.read_timeout = Some(read_timeout);
            let client = Client::try_from(config)?;
            if client.apiserver_version().await.is_ok() {
                return Ok(client);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "rkube server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates `object(i)` for every `i` in `from..to` with `concurrency` creates in flight.
pub async fn create_concurrently<K>(
    api: &Api<K>,
    from: usize,
    to: usize,
    concurrency: usize,
    object: fn(usize) -> K,
) -> anyhow::Result<()>
where
    K: kube::Resource
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut i = from + t;
                while i < to {
                    api.create(&PostParams::default(), &object(i)).await?;
                    i += concurrency;
                }
                Ok::<_, kube::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}
