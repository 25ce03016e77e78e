//! ImageLocality (Score): prefers nodes that already have the pod's images, weighted by image
//! size and by how widely the image is spread (so one node with it does not attract every pod).

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, PreScorePlugin, ScorePlugin, Status};
use crate::node_info::{NodeInfo, normalized_image_name};
use crate::pod_info::PodInfo;

pub const NAME: &str = "ImageLocality";

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub struct ImageLocality;

/// The pod's images (normalized), how many nodes hold each image, and how many nodes there are.
#[derive(Clone)]
struct Spread {
    images: Vec<String>,
    image_nodes: Arc<HashMap<String, usize>>,
    total_nodes: usize,
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
    fn pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        let Some(spec) = pod.pod.spec.as_ref() else {
            return Status::skip();
        };
        let images = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .map(|c| normalized_image_name(c.image.as_deref().unwrap_or_default()))
            .collect();
        state.write(
            NAME,
            Spread {
                images,
                image_nodes: snapshot.image_nodes.clone(),
                total_nodes: snapshot.len(),
            },
        );
        Status::success()
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(spread) = state.read::<Spread>(NAME) else {
            return 0;
        };
        if node.images.is_empty() || spread.images.is_empty() {
            return 0;
        }
        let mut sum = 0i64;
        for name in &spread.images {
            if let Some(size) = node.images.get(name) {
                let with = spread.image_nodes.get(name).copied().unwrap_or(1) as f64;
                sum += (*size as f64 * with / spread.total_nodes.max(1) as f64) as i64;
            }
        }
        let max_threshold = MAX_CONTAINER_THRESHOLD * spread.images.len() as i64;
        let sum = sum.clamp(MIN_THRESHOLD, max_threshold);
        MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
    }
}
