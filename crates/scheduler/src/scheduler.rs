//! The scheduling loop (upstream's `scheduleOne`), on its own thread: pop a pod, bring the
//! snapshot up to date, PreFilter, Filter the nodes in parallel until enough fit, PostFilter
//! (preemption) when none does, PreScore and Score the feasible ones, pick the best (ties
//! broken at random), assume the pod there and hand the binding to the async runtime so the
//! next pod can start at once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::api::ApiWriter;
use crate::cache::{Cache, Snapshot};
use crate::framework::runtime::{Diagnosis, fit_error_message, num_feasible_nodes_to_find};
use crate::framework::{Code, CycleState, Framework, NodeToStatus, PostFilterContext, Status};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;
use crate::queue::{ClusterEvent, QueuedPod, SchedulingQueue};

/// The "plugin" that rejects every pod while there are no nodes (only a node event helps).
const NO_NODES: &str = "NoNodes";

/// At most this many bindings are written at once.
const MAX_BINDS_IN_FLIGHT: usize = 512;

/// Why an attempt failed: a rejection (`Unschedulable`, with the diagnosis) or an error.
struct Failure {
    reason: &'static str,
    message: String,
    plugins: HashSet<&'static str>,
    nominated: Option<String>,
}

pub struct Scheduler {
    pub framework: Arc<Framework>,
    pub cache: Arc<Mutex<Cache>>,
    pub queue: Arc<SchedulingQueue>,
    pub api: Option<ApiWriter>,
    pub runtime: Option<tokio::runtime::Handle>,
    snapshot: Snapshot,
    next_start_node_index: usize,
    binds: Arc<tokio::sync::Semaphore>,
    /// Time spent per phase (snapshot, prefilter, filter, prescore, score), for profiling.
    pub phase_times: [std::time::Duration; 5],
}

impl Scheduler {
    pub fn new(
        framework: Arc<Framework>,
        cache: Arc<Mutex<Cache>>,
        queue: Arc<SchedulingQueue>,
        api: Option<ApiWriter>,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Scheduler {
        Scheduler {
            framework,
            cache,
            queue,
            api,
            runtime,
            snapshot: Snapshot::default(),
            next_start_node_index: 0,
            binds: Arc::new(tokio::sync::Semaphore::new(MAX_BINDS_IN_FLIGHT)),
            phase_times: Default::default(),
        }
    }

    /// Schedules pods until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) {
        while let Some((pod, cycle)) = self.queue.pop(stop) {
            self.schedule_one(pod, cycle);
        }
    }

    pub fn schedule_one(&mut self, queued: QueuedPod, cycle: u64) {
        let t0 = std::time::Instant::now();
        let pod = queued.info.clone();
        if pod.terminating || self.cache.lock().expect("cache lock").pod(&pod.uid).is_some() {
            self.queue.done(&pod.uid);
            return;
        }
        self.cache
            .lock()
            .expect("cache lock")
            .update_snapshot(&mut self.snapshot);
        self.phase_times[0] += t0.elapsed();
        let nominations = self.queue.nominations();
        let mut state = CycleState::default();
        match self.schedule_pod(&mut state, &pod, &nominations) {
            Ok(node) => self.assume_and_bind(state, pod, node, cycle),
            Err(failure) => self.handle_failure(&pod, cycle, failure),
        }
    }

    fn schedule_pod(
        &mut self,
        state: &mut CycleState,
        pod: &Arc<PodInfo>,
        nominations: &HashMap<String, Vec<Arc<PodInfo>>>,
    ) -> Result<String, Failure> {
        let fw = self.framework.clone();
        let all = self.snapshot.len();
        if all == 0 {
            // Unresolvable until a node is added (upstream's ErrNoNodesAvailable).
            return Err(Failure {
                reason: "Unschedulable",
                message: "no nodes available to schedule pods".to_owned(),
                plugins: HashSet::from([NO_NODES]),
                nominated: None,
            });
        }
        let mut diagnosis = Diagnosis::default();
        let t = std::time::Instant::now();
        let (narrowed, status) = fw.run_pre_filter(state, pod, &self.snapshot);
        self.phase_times[1] += t.elapsed();
        if !status.is_success() {
            if !status.is_rejected() {
                return Err(error_failure(&status));
            }
            diagnosis.pre_filter_msg = status.message();
            diagnosis.unschedulable_plugins.insert(status.plugin);
            for n in &self.snapshot.nodes {
                diagnosis.node_to_status.insert(n.name.clone(), status.clone());
            }
            return Err(self.unschedulable(state, pod, diagnosis));
        }
        // A pod nominated by an earlier preemption tries its node first.
        if let Some(nominated) = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            && let Some(node) = self.snapshot.get(nominated)
            && fw
                .run_filter_with_nominated(state, pod, node, nominations_for(nominations, nominated))
                .is_success()
        {
            return Ok(nominated.to_owned());
        }
        let narrowed_nodes: Vec<Arc<NodeInfo>>;
        let candidates: &[Arc<NodeInfo>] = match &narrowed {
            Some(names) => {
                narrowed_nodes = self
                    .snapshot
                    .nodes
                    .iter()
                    .filter(|n| names.contains(&n.name))
                    .cloned()
                    .collect();
                &narrowed_nodes
            }
            None => &self.snapshot.nodes,
        };
        let t = std::time::Instant::now();
        let (feasible, statuses, processed) = find_feasible(
            &fw,
            self.next_start_node_index,
            state,
            pod,
            candidates,
            nominations,
        );
        if !candidates.is_empty() {
            self.next_start_node_index =
                (self.next_start_node_index % candidates.len() + processed) % candidates.len();
        }
        self.phase_times[2] += t.elapsed();
        if feasible.is_empty() {
            for status in statuses.values() {
                diagnosis.unschedulable_plugins.insert(status.plugin);
            }
            diagnosis.node_to_status = statuses;
            // Nodes that PreFilter ruled out count as rejected by it.
            if narrowed.is_some() {
                for n in &self.snapshot.nodes {
                    diagnosis.node_to_status.entry(n.name.clone()).or_insert_with(|| {
                        Status::unresolvable(crate::plugins::node_affinity::ERR_REASON_POD)
                            .with_plugin("NodeAffinity")
                    });
                }
            }
            if let Some(error) = diagnosis.node_to_status.values().find(|s| s.code == Code::Error) {
                return Err(error_failure(error));
            }
            return Err(self.unschedulable(state, pod, diagnosis));
        }
        if feasible.len() == 1 {
            return Ok(feasible[0].name.clone());
        }
        let t = std::time::Instant::now();
        let status = fw.run_pre_score(state, pod, &feasible, &self.snapshot);
        self.phase_times[3] += t.elapsed();
        if !status.is_success() {
            return Err(error_failure(&status));
        }
        let t = std::time::Instant::now();
        let totals = fw.run_score(state, pod, &feasible);
        self.phase_times[4] += t.elapsed();
        Ok(feasible[select_host(&totals)].name.clone())
    }

    /// The pod fits no node: run PostFilter (preemption) and build the FitError message.
    fn unschedulable(&self, state: &CycleState, pod: &PodInfo, mut diagnosis: Diagnosis) -> Failure {
        let mut nominated = None;
        let ctx = PostFilterContext {
            framework: &self.framework,
            snapshot: &self.snapshot,
            state,
        };
        for plugin in &self.framework.post_filter {
            let Some(p) = plugin.post_filter() else { continue };
            let (node, status) = p.post_filter(&ctx, pod, &diagnosis.node_to_status);
            if status.is_success() {
                nominated = node;
                break;
            }
            diagnosis.post_filter_msg = status.message();
        }
        if nominated.is_some() {
            diagnosis.post_filter_msg.clear();
        }
        if diagnosis.unschedulable_plugins.is_empty() {
            diagnosis.unschedulable_plugins.insert("Unknown");
        }
        Failure {
            reason: "Unschedulable",
            message: fit_error_message(self.snapshot.len(), &diagnosis),
            plugins: diagnosis.unschedulable_plugins,
            nominated,
        }
    }

    fn handle_failure(&self, pod: &Arc<PodInfo>, cycle: u64, failure: Failure) {
        tracing::debug!(pod = %pod.key(), "cannot schedule: {}", failure.message);
        if let Some(node) = &failure.nominated {
            self.queue.nominate(pod.clone(), node);
        }
        self.queue.requeue_failed(&pod.uid, cycle, failure.plugins);
        if let Some(api) = &self.api {
            api.scheduling_failed(
                pod.pod.clone(),
                failure.reason,
                failure.message,
                failure.nominated,
            );
        }
    }

    fn assume_and_bind(&mut self, mut state: CycleState, pod: Arc<PodInfo>, node: String, cycle: u64) {
        self.cache
            .lock()
            .expect("cache lock")
            .assume_pod(pod.clone(), &node);
        let status = self.framework.run_reserve(&mut state, &pod, &node);
        if !status.is_success() {
            self.cache.lock().expect("cache lock").forget_pod(&pod.uid);
            let failure = error_failure(&status);
            self.handle_failure(&pod, cycle, failure);
            return;
        }
        let Some(binder) = self.framework.bind.first().cloned() else {
            // No binder (unit tests): the decision is final.
            self.queue.done(&pod.uid);
            return;
        };
        let Some(runtime) = self.runtime.clone() else {
            self.queue.done(&pod.uid);
            return;
        };
        let (cache, queue, api, binds) = (
            self.cache.clone(),
            self.queue.clone(),
            self.api.clone(),
            self.binds.clone(),
        );
        runtime.spawn(async move {
            let _permit = binds.acquire_owned().await;
            let Some(bind) = binder.bind() else { return };
            match bind.bind(pod.pod.clone(), node.clone()).await {
                Ok(()) => {
                    queue.done(&pod.uid);
                    if let Some(api) = &api {
                        let message =
                            format!("Successfully assigned {}/{} to {}", pod.namespace, pod.name, node);
                        api.event(&pod.pod, clientkit::EventType::Normal, "Scheduled", message);
                    }
                }
                Err(err) => {
                    tracing::debug!(pod = %pod.key(), %node, "binding failed: {err}");
                    cache.lock().expect("cache lock").forget_pod(&pod.uid);
                    queue.requeue_failed(&pod.uid, cycle, HashSet::new());
                    queue.on_event(ClusterEvent::AssignedPodDelete);
                    if let Some(api) = &api {
                        let message = format!("running Bind plugin \"{}\": {err}", binder.name());
                        api.scheduling_failed(pod.pod.clone(), "SchedulerError", message, None);
                    }
                }
            }
        });
    }
}

/// Filters nodes in parallel, starting at `start` (where the last cycle stopped), until
/// upstream's number of feasible nodes is found. Also returns how many nodes were processed.
fn find_feasible(
    fw: &Framework,
    start: usize,
    state: &CycleState,
    pod: &PodInfo,
    nodes: &[Arc<NodeInfo>],
    nominations: &HashMap<String, Vec<Arc<PodInfo>>>,
) -> (Vec<Arc<NodeInfo>>, NodeToStatus, usize) {
    let n = nodes.len();
    if n == 0 {
        return (Vec::new(), NodeToStatus::new(), 0);
    }
    let to_find = num_feasible_nodes_to_find(fw.percentage_of_nodes_to_score, n).max(1);
    let start = start % n;
    let found = AtomicUsize::new(0);
    let check = |i: usize| -> Option<(usize, Status)> {
        if found.load(Ordering::Relaxed) >= to_find {
            return None;
        }
        let at = (start + i) % n;
        let node = &nodes[at];
        let status = fw.run_filter_with_nominated(state, pod, node, nominations_for(nominations, &node.name));
        if status.is_success() && found.fetch_add(1, Ordering::Relaxed) >= to_find {
            return None;
        }
        Some((at, status))
    };
    let results: Vec<(usize, Status)> = if n <= 64 {
        (0..n).filter_map(check).collect()
    } else {
        (0..n)
            .into_par_iter()
            .with_min_len(32)
            .filter_map(check)
            .collect()
    };
    let processed = results.len();
    let mut feasible = Vec::new();
    let mut statuses = NodeToStatus::new();
    for (i, status) in results {
        if status.is_success() {
            feasible.push(nodes[i].clone());
        } else {
            statuses.insert(nodes[i].name.clone(), status);
        }
    }
    (feasible, statuses, processed)
}

fn error_failure(status: &Status) -> Failure {
    Failure {
        reason: "SchedulerError",
        message: if status.plugin.is_empty() {
            status.message()
        } else {
            format!("running {:?} plugin: {}", status.plugin, status.message())
        },
        plugins: HashSet::new(),
        nominated: None,
    }
}

fn nominations_for<'a>(
    nominations: &'a HashMap<String, Vec<Arc<PodInfo>>>,
    node: &str,
) -> &'a [Arc<PodInfo>] {
    nominations.get(node).map(Vec::as_slice).unwrap_or_default()
}

/// The index of a highest total, ties broken uniformly at random (reservoir sampling).
fn select_host(totals: &[i64]) -> usize {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, &score) in totals.iter().enumerate() {
        if i == 0 || score > totals[best] {
            best = i;
            ties = 1;
        } else if score == totals[best] {
            ties += 1;
            if fastrand::u32(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::priority_sort::PrioritySort;
    use crate::plugins::{Handle, default_framework};
    use std::time::Instant;

    fn node(name: &str, zone: &str) -> k8s_openapi::api::core::v1::Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone}},
            "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}}
        }))
        .unwrap()
    }

    fn replica(i: usize) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("web-{i}"), "namespace": "default", "uid": format!("uid-{i}"),
                             "labels": {"app": "web"},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                                  "uid": "rs-1", "controller": true}]},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }))
            .unwrap(),
        ))
    }

    /// A scheduler without an API (no binder: decisions are final once assumed).
    fn offline(nodes: usize) -> (Scheduler, Arc<SchedulingQueue>, Arc<Mutex<Cache>>) {
        let framework = Arc::new(default_framework(&Handle::default()));
        let queue = Arc::new(SchedulingQueue::new(Arc::new(PrioritySort)));
        let cache = Arc::new(Mutex::new(Cache::default()));
        for i in 0..nodes {
            cache
                .lock()
                .unwrap()
                .set_node(node(&format!("node-{i}"), &format!("zone-{}", i % 3)));
        }
        (
            Scheduler::new(framework, cache.clone(), queue.clone(), None, None),
            queue,
            cache,
        )
    }

    fn drain(scheduler: &mut Scheduler, queue: &SchedulingQueue, pods: usize) {
        let stop = AtomicBool::new(false);
        for _ in 0..pods {
            let (pod, cycle) = queue.pop(&stop).unwrap();
            scheduler.schedule_one(pod, cycle);
        }
    }

    #[test]
    fn default_scoring_spreads_a_replica_set_evenly() {
        let (mut scheduler, queue, _) = offline(10);
        for i in 0..50 {
            queue.add_or_update(replica(i));
        }
        drain(&mut scheduler, &queue, 50);
        scheduler
            .cache
            .lock()
            .unwrap()
            .update_snapshot(&mut scheduler.snapshot);
        let per_node: Vec<usize> = scheduler.snapshot.nodes.iter().map(|n| n.pods.len()).collect();
        assert_eq!(per_node.iter().sum::<usize>(), 50);
        // Zones of 4, 3 and 3 nodes: the zone default constraint pulls too, so ±1 per node.
        assert!(per_node.iter().all(|&n| (4..=6).contains(&n)), "{per_node:?}");
    }

    #[test]
    fn full_nodes_reject_with_upstreams_message_and_stay_queued() {
        let (mut scheduler, queue, _) = offline(2);
        let big = |i: usize| {
            Arc::new(PodInfo::new(
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("big-{i}"), "namespace": "default", "uid": format!("big-{i}")},
                    "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "3"}}}]}
                }))
                .unwrap(),
            ))
        };
        for i in 0..3 {
            queue.add_or_update(big(i));
        }
        drain(&mut scheduler, &queue, 3);
        assert_eq!(queue.counts(), (0, 0, 1, 0), "the third waits as unschedulable");
    }

    /// Throughput of the scheduling loop alone (no API): `cargo test -p scheduler --release
    /// throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput_on_5000_nodes() {
        let (mut scheduler, queue, _) = offline(5000);
        let pods = 10_000;
        for i in 0..pods {
            queue.add_or_update(replica(i));
        }
        let started = Instant::now();
        drain(&mut scheduler, &queue, pods);
        let elapsed = started.elapsed();
        eprintln!(
            "{pods} pods on 5000 nodes in {elapsed:?}: {:.0} pods/s",
            pods as f64 / elapsed.as_secs_f64()
        );
        eprintln!(
            "snapshot, prefilter, filter, prescore, score: {:?}",
            scheduler.phase_times
        );
    }
}
