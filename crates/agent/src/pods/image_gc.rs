//! kubelet's image garbage collection: every period, when the image filesystem is fuller than
//! the high threshold, images no container uses are removed — least recently used first,
//! none younger than the minimum age — until usage is back under the low threshold.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clientkit::events::EventType;
use k8s_openapi::api::core::v1::ObjectReference;

use super::Node;

#[derive(Clone, Debug)]
pub struct ImageGcPolicy {
    /// Disk usage (percent) at which collection starts (kubelet's `--image-gc-high-threshold`).
    pub high_percent: u8,
    /// Disk usage (percent) collection brings the filesystem down to.
    pub low_percent: u8,
    /// How often usage is checked (kubelet: 5 minutes).
    pub period: Duration,
    /// Images first seen more recently than this are kept (kubelet's `imageMinimumGCAge`).
    pub minimum_age: Duration,
}

impl Default for ImageGcPolicy {
    fn default() -> ImageGcPolicy {
        ImageGcPolicy {
            high_percent: 85,
            low_percent: 80,
            period: Duration::from_secs(300),
            minimum_age: Duration::from_secs(120),
        }
    }
}

/// When each image (by manifest digest) was first seen, and last seen in use.
#[derive(Default)]
struct Records {
    first_seen: HashMap<String, Instant>,
    last_used: HashMap<String, Instant>,
}

pub async fn run(node: Arc<Node>, policy: ImageGcPolicy) {
    let mut records = Records::default();
    let mut tick = tokio::time::interval(policy.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(err) = collect(&node, &policy, &mut records).await {
            tracing::warn!("image garbage collection: {err:#}");
            event(&node, "ImageGCFailed", &format!("{err:#}"));
        }
    }
}

/// Filesystem size and bytes in use where the image store lives.
fn fs_usage(path: &Path) -> anyhow::Result<(u64, u64)> {
    let fs = nix::sys::statvfs::statvfs(path)?;
    let block = fs.fragment_size();
    let capacity = fs.blocks() * block;
    Ok((capacity, capacity - fs.blocks_available() * block))
}

async fn collect(node: &Arc<Node>, policy: &ImageGcPolicy, records: &mut Records) -> anyhow::Result<()> {
    let store = node.images.store().clone();
    let runtime = node.runtime.clone();
    let in_use: Vec<String> = tokio::task::spawn_blocking(move || runtime.list_containers(None))
        .await??
        .into_iter()
        .map(|c| c.image)
        .collect();
    let images = store.list()?;
    let now = Instant::now();
    // By manifest: every name of one image goes together.
    let mut by_manifest: HashMap<String, (Vec<String>, u64)> = HashMap::new();
    for (name, image) in &images {
        let entry = by_manifest
            .entry(image.manifest.clone())
            .or_insert_with(|| (Vec::new(), image.size));
        entry.0.push(name.clone());
        records.first_seen.entry(image.manifest.clone()).or_insert(now);
        if in_use.contains(name) {
            records.last_used.insert(image.manifest.clone(), now);
        }
    }
    records.first_seen.retain(|m, _| by_manifest.contains_key(m));
    records.last_used.retain(|m, _| by_manifest.contains_key(m));

    let (capacity, used) = fs_usage(&node.pods_dir.parent().unwrap_or(&node.pods_dir).join("images"))?;
    if capacity == 0 || used * 100 < capacity * u64::from(policy.high_percent) {
        return Ok(());
    }
    let to_free = used - capacity * u64::from(policy.low_percent) / 100;
    let mut candidates: Vec<(&String, &(Vec<String>, u64))> = by_manifest
        .iter()
        .filter(|(manifest, (names, _))| {
            !names.iter().any(|n| in_use.contains(n))
                && records
                    .first_seen
                    .get(*manifest)
                    .is_some_and(|t| now.duration_since(*t) >= policy.minimum_age)
        })
        .collect();
    // Least recently used first; never used counts as oldest.
    candidates.sort_by_key(|(manifest, _)| records.last_used.get(*manifest).copied());
    let eligible: u64 = candidates.iter().map(|(_, (_, size))| size).sum();
    let mut freed = 0;
    for (_, (names, _)) in candidates {
        if freed >= to_free {
            break;
        }
        let store = store.clone();
        let names = names.clone();
        freed += tokio::task::spawn_blocking(move || store.remove(&names)).await??;
    }
    if freed < to_free {
        anyhow::bail!(
            "Failed to garbage collect required amount of images. Attempted to free {to_free} bytes, but only found {eligible} bytes eligible to free."
        );
    }
    Ok(())
}

fn event(node: &Node, reason: &str, message: &str) {
    let name = node.config.node_name.clone();
    let reference = ObjectReference {
        kind: Some("Node".into()),
        name: Some(name.clone()),
        uid: Some(name),
        ..Default::default()
    };
    let recorder = node.recorder.clone();
    let (reason, message) = (reason.to_owned(), message.to_owned());
    tokio::spawn(async move {
        recorder
            .record(&reference, EventType::Warning, &reason, &message)
            .await
    });
}
