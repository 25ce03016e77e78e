//! The scheduling queue (upstream's `PriorityQueue`): pods waiting to be scheduled.
//!
//! - **activeQ**: ready to be tried, ordered by the QueueSort plugin (PrioritySort: higher
//!   priority first, then earlier).
//! - **backoffQ**: failed recently; back in activeQ when their backoff (1 s doubling per
//!   attempt, at most 10 s) has passed.
//! - **unschedulable**: rejected by plugins; moved back when a cluster event that could make
//!   them schedulable happens (upstream's QueueingHints, by the plugins that rejected the pod),
//!   or after 5 minutes regardless.
//!
//! It also keeps the nominator: which pods preemption nominated to which node, so the space they
//! freed is not taken by lower-priority pods.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::framework::QueueSortPlugin;
use crate::pod_info::PodInfo;

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried after this long even without a relevant event.
const UNSCHEDULABLE_MAX_STAY: Duration = Duration::from_secs(5 * 60);

/// A cluster event that may make unschedulable pods schedulable, and which plugins' rejections
/// it can resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    NodeAdd,
    NodeUpdate(crate::cache::NodeChange),
    /// An assigned pod was deleted (or finished): resources, ports, spreading may free up.
    AssignedPodDelete,
    /// A pod was bound/added to a node: affinity to it may now be satisfied.
    AssignedPodAdd,
    /// An assigned pod's labels changed.
    AssignedPodUpdate,
}

impl ClusterEvent {
    /// Whether a pod rejected by `plugin` might now pass it.
    fn may_help(self, plugin: &str) -> bool {
        match self {
            ClusterEvent::NodeAdd => true,
            ClusterEvent::NodeUpdate(c) => match plugin {
                "NodeResourcesFit" | "NodeResourcesBalancedAllocation" => c.allocatable,
                "TaintToleration" => c.taints,
                "NodeUnschedulable" => c.unschedulable || c.taints,
                "NodeAffinity" | "PodTopologySpread" | "InterPodAffinity" => c.labels,
                "NodePorts" | "NodeName" | "NoNodes" => false,
                _ => c.any(),
            },
            ClusterEvent::AssignedPodDelete => matches!(
                plugin,
                "NodeResourcesFit"
                    | "NodePorts"
                    | "InterPodAffinity"
                    | "PodTopologySpread"
                    | "DefaultPreemption"
            ),
            ClusterEvent::AssignedPodAdd | ClusterEvent::AssignedPodUpdate => {
                matches!(plugin, "InterPodAffinity" | "PodTopologySpread")
            }
        }
    }
}

/// A pod in the queue with its scheduling history.
#[derive(Clone, Debug)]
pub struct QueuedPod {
    pub info: Arc<PodInfo>,
    /// When it entered the queue (PrioritySort's tie breaker).
    pub timestamp: Instant,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// When it last failed.
    pub last_failure: Option<Instant>,
    pub unschedulable_plugins: HashSet<&'static str>,
}

impl QueuedPod {
    fn backoff_expiry(&self) -> Instant {
        let Some(failed) = self.last_failure else {
            return self.timestamp;
        };
        let mut backoff = INITIAL_BACKOFF;
        for _ in 1..self.attempts {
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        failed + backoff
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable(Instant),
    InFlight,
}

struct Entry {
    pod: QueuedPod,
    place: Place,
    /// Bumped whenever the pod is (re)inserted in a heap; older heap items are stale.
    seq: u64,
}

type ActiveKey = (i64, Instant);

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<Reverse<(ActiveKey, u64, String)>>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    scheduling_cycle: u64,
    /// The cycle during which the last relevant cluster event happened: a pod whose attempt
    /// began before it goes to backoff instead of unschedulable (it may have missed the event).
    move_request_cycle: u64,
    last_unschedulable_flush: Option<Instant>,
    /// UIDs of the pods in the unschedulable place (events visit only these).
    unschedulable: HashSet<String>,
    nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    nominated_node: HashMap<String, String>,
}

pub struct SchedulingQueue {
    state: Mutex<State>,
    wake: Condvar,
    sort: Arc<dyn QueueSortPlugin>,
}

impl SchedulingQueue {
    pub fn new(sort: Arc<dyn QueueSortPlugin>) -> SchedulingQueue {
        SchedulingQueue {
            state: Mutex::default(),
            wake: Condvar::new(),
            sort,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("scheduling queue lock")
    }

    fn push_active(&self, st: &mut State, uid: &str) {
        st.seq += 1;
        let seq = st.seq;
        st.unschedulable.remove(uid);
        let Some(e) = st.entries.get_mut(uid) else { return };
        e.place = Place::Active;
        e.seq = seq;
        let key = self.sort.sort_key(&e.pod.info, e.pod.timestamp);
        st.active.push(Reverse((key, seq, uid.to_owned())));
        self.wake.notify_one();
    }

    fn push_backoff(st: &mut State, uid: &str) {
        st.seq += 1;
        let seq = st.seq;
        st.unschedulable.remove(uid);
        let Some(e) = st.entries.get_mut(uid) else { return };
        e.place = Place::Backoff;
        e.seq = seq;
        st.backoff
            .push(Reverse((e.pod.backoff_expiry(), seq, uid.to_owned())));
    }

    /// To activeQ if its backoff has passed, else to backoffQ.
    fn requeue(&self, st: &mut State, uid: &str, now: Instant) {
        let Some(e) = st.entries.get(uid) else { return };
        if e.pod.backoff_expiry() <= now {
            self.push_active(st, uid);
        } else {
            Self::push_backoff(st, uid);
        }
    }

    /// A new pending pod, or an update of one.
    pub fn add_or_update(&self, info: Arc<PodInfo>) {
        let mut st = self.lock();
        let st = &mut *st;
        self.update_nomination_locked(st, &info);
        match st.entries.get_mut(&info.uid) {
            None => {
                st.entries.insert(
                    info.uid.clone(),
                    Entry {
                        pod: QueuedPod {
                            info: info.clone(),
                            timestamp: Instant::now(),
                            attempts: 0,
                            last_failure: None,
                            unschedulable_plugins: HashSet::new(),
                        },
                        place: Place::Active,
                        seq: 0,
                    },
                );
                self.push_active(st, &info.uid);
            }
            Some(e) => {
                let changed = spec_or_labels_changed(&e.pod.info, &info);
                e.pod.info = info.clone();
                // An update that may change the outcome retries the pod now (or after backoff).
                if changed && matches!(e.place, Place::Unschedulable(_)) {
                    self.requeue(st, &info.uid, Instant::now());
                } else if changed && e.place == Place::Active {
                    // Re-key (priority cannot change, but keep the heap fresh).
                    self.push_active(st, &info.uid);
                }
            }
        }
    }

    /// The pod is gone (deleted, bound elsewhere, or no longer ours).
    pub fn delete(&self, uid: &str) {
        let mut st = self.lock();
        st.entries.remove(uid);
        st.unschedulable.remove(uid);
        Self::remove_nomination_locked(&mut st, uid);
    }

    /// Waits for the next pod to schedule (None once `stop` is set). The pod is in flight until
    /// [`SchedulingQueue::done`] or a failure puts it back.
    pub fn pop(&self, stop: &AtomicBool) -> Option<(QueuedPod, u64)> {
        let mut st = self.lock();
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let now = Instant::now();
            self.flush_backoff(&mut st, now);
            self.flush_unschedulable(&mut st, now);
            while let Some(Reverse((_, seq, uid))) = st.active.pop() {
                let Some(e) = st.entries.get_mut(&uid) else {
                    continue;
                };
                if e.seq != seq || e.place != Place::Active {
                    continue;
                }
                e.place = Place::InFlight;
                e.pod.attempts += 1;
                let pod = e.pod.clone();
                st.scheduling_cycle += 1;
                return Some((pod, st.scheduling_cycle));
            }
            let next_backoff = st.backoff.peek().map(|Reverse((t, _, _))| *t);
            let wait = next_backoff
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_secs(1))
                .clamp(Duration::from_millis(1), Duration::from_secs(1));
            st = self.wake.wait_timeout(st, wait).expect("scheduling queue lock").0;
        }
    }

    fn flush_backoff(&self, st: &mut State, now: Instant) {
        while let Some(Reverse((at, _, _))) = st.backoff.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, seq, uid)) = st.backoff.pop().expect("peeked");
            if st
                .entries
                .get(&uid)
                .is_some_and(|e| e.seq == seq && e.place == Place::Backoff)
            {
                self.push_active(st, &uid);
            }
        }
    }

    fn flush_unschedulable(&self, st: &mut State, now: Instant) {
        if st
            .last_unschedulable_flush
            .is_some_and(|t| now - t < Duration::from_secs(30))
        {
            return;
        }
        st.last_unschedulable_flush = Some(now);
        let stale: Vec<String> = st
            .unschedulable
            .iter()
            .filter(|uid| {
                st.entries
                    .get(*uid)
                    .is_some_and(|e| matches!(e.place, Place::Unschedulable(since) if now - since >= UNSCHEDULABLE_MAX_STAY))
            })
            .cloned()
            .collect();
        for uid in stale {
            self.requeue(st, &uid, now);
        }
    }

    /// The in-flight pod was scheduled (or dropped): it leaves the queue.
    pub fn done(&self, uid: &str) {
        let mut st = self.lock();
        if st.entries.get(uid).is_some_and(|e| e.place == Place::InFlight) {
            st.entries.remove(uid);
        }
        Self::remove_nomination_locked(&mut st, uid);
    }

    /// The in-flight pod failed in cycle `cycle`. Rejected by plugins: unschedulable (or backoff
    /// when an event arrived meanwhile); an error (`plugins` empty): backoff.
    pub fn requeue_failed(&self, uid: &str, cycle: u64, plugins: HashSet<&'static str>) {
        let mut st = self.lock();
        let st = &mut *st;
        let now = Instant::now();
        let move_request_cycle = st.move_request_cycle;
        let Some(e) = st.entries.get_mut(uid) else { return };
        if e.place != Place::InFlight {
            return;
        }
        e.pod.last_failure = Some(now);
        let is_error = plugins.is_empty();
        e.pod.unschedulable_plugins = plugins;
        if is_error || move_request_cycle >= cycle {
            Self::push_backoff(st, uid);
        } else {
            e.place = Place::Unschedulable(now);
            st.unschedulable.insert(uid.to_owned());
        }
    }

    /// A cluster event: unschedulable pods it may help go back to active/backoff.
    pub fn on_event(&self, event: ClusterEvent) {
        let mut st = self.lock();
        let st = &mut *st;
        st.move_request_cycle = st.scheduling_cycle;
        let now = Instant::now();
        let moved: Vec<String> = st
            .unschedulable
            .iter()
            .filter(|uid| {
                st.entries.get(*uid).is_some_and(|e| {
                    e.pod.unschedulable_plugins.is_empty()
                        || e.pod.unschedulable_plugins.iter().any(|p| event.may_help(p))
                })
            })
            .cloned()
            .collect();
        for uid in moved {
            self.requeue(st, &uid, now);
        }
    }

    /// Pods waiting in each place: (active, backoff, unschedulable, in flight).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let st = self.lock();
        let mut c = (0, 0, 0, 0);
        for e in st.entries.values() {
            match e.place {
                Place::Active => c.0 += 1,
                Place::Backoff => c.1 += 1,
                Place::Unschedulable(_) => c.2 += 1,
                Place::InFlight => c.3 += 1,
            }
        }
        c
    }

    // --- the nominator ---

    /// Records `pod` as nominated to `node` (preemption made room there).
    pub fn nominate(&self, pod: Arc<PodInfo>, node: &str) {
        let mut st = self.lock();
        Self::remove_nomination_locked(&mut st, &pod.uid);
        st.nominated_node.insert(pod.uid.clone(), node.to_owned());
        st.nominated.entry(node.to_owned()).or_default().push(pod);
    }

    fn update_nomination_locked(&self, st: &mut State, info: &Arc<PodInfo>) {
        let from_status = info
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty());
        match (from_status, st.nominated_node.get(&info.uid).cloned()) {
            (Some(node), _) => {
                Self::remove_nomination_locked(st, &info.uid);
                st.nominated_node.insert(info.uid.clone(), node.clone());
                st.nominated.entry(node).or_default().push(info.clone());
            }
            (None, Some(node)) => {
                // Keep the scheduler's own nomination (its status write may still be on the way).
                if let Some(list) = st.nominated.get_mut(&node) {
                    for p in list.iter_mut().filter(|p| p.uid == info.uid) {
                        *p = info.clone();
                    }
                }
            }
            (None, None) => {}
        }
    }

    fn remove_nomination_locked(st: &mut State, uid: &str) {
        if let Some(node) = st.nominated_node.remove(uid)
            && let Some(list) = st.nominated.get_mut(&node)
        {
            list.retain(|p| p.uid != uid);
            if list.is_empty() {
                st.nominated.remove(&node);
            }
        }
    }

    pub fn remove_nomination(&self, uid: &str) {
        Self::remove_nomination_locked(&mut self.lock(), uid);
    }

    /// Every node's nominated pods (empty in the common case, so cheap to copy per cycle).
    pub fn nominations(&self) -> HashMap<String, Vec<Arc<PodInfo>>> {
        let st = self.lock();
        if st.nominated.is_empty() {
            return HashMap::new();
        }
        st.nominated.clone()
    }
}

/// Whether an update of a pending pod may change where it fits (spec, labels, annotations);
/// status-only updates (such as the scheduler's own PodScheduled condition) do not.
fn spec_or_labels_changed(old: &PodInfo, new: &PodInfo) -> bool {
    old.pod.spec != new.pod.spec
        || old.pod.metadata.labels != new.pod.metadata.labels
        || old.pod.metadata.annotations != new.pod.metadata.annotations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::priority_sort::PrioritySort;

    fn pod(uid: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": uid, "namespace": "default", "uid": uid},
                "spec": {"priority": priority, "containers": [{"name": "c"}]}
            }))
            .unwrap(),
        ))
    }

    #[test]
    fn pops_by_priority_then_age_and_requeues_on_events() {
        let q = SchedulingQueue::new(Arc::new(PrioritySort));
        let stop = AtomicBool::new(false);
        q.add_or_update(pod("low", 0));
        q.add_or_update(pod("high", 10));
        q.add_or_update(pod("low2", 0));
        let (first, c1) = q.pop(&stop).unwrap();
        assert_eq!(first.info.uid, "high");
        let (second, _) = q.pop(&stop).unwrap();
        assert_eq!(second.info.uid, "low");
        q.done("low");
        // "high" is rejected by NodeResourcesFit: it waits for a relevant event.
        q.requeue_failed("high", c1 + 10, HashSet::from(["NodeResourcesFit"]));
        assert_eq!(q.counts(), (1, 0, 1, 0));
        q.on_event(ClusterEvent::AssignedPodAdd);
        assert_eq!(q.counts(), (1, 0, 1, 0), "irrelevant event");
        q.on_event(ClusterEvent::AssignedPodDelete);
        assert_eq!(q.counts(), (1, 1, 0, 0), "to backoff (1 s)");
        let (third, _) = q.pop(&stop).unwrap();
        assert_eq!(third.info.uid, "low2");
        let (again, _) = q.pop(&stop).unwrap();
        assert_eq!(again.info.uid, "high");
        assert_eq!(again.attempts, 2);
    }

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        let now = Instant::now();
        let mut p = QueuedPod {
            info: pod("p", 0),
            timestamp: now,
            attempts: 1,
            last_failure: Some(now),
            unschedulable_plugins: HashSet::new(),
        };
        assert_eq!(p.backoff_expiry() - now, Duration::from_secs(1));
        p.attempts = 3;
        assert_eq!(p.backoff_expiry() - now, Duration::from_secs(4));
        p.attempts = 10;
        assert_eq!(p.backoff_expiry() - now, Duration::from_secs(10));
    }
}
