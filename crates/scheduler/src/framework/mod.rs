//! The plugin framework (upstream's `framework` package): one small trait per extension point,
//! the [`Status`] plugins answer with, the per-cycle [`CycleState`], and [`Framework`], a profile's
//! plugins in order with their score weights.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;

use crate::cache::Snapshot;
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

pub mod runtime;

/// The highest score a Score plugin gives a node (after NormalizeScore).
pub const MAX_NODE_SCORE: i64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Success,
    Error,
    /// The pod does not fit now; preemption might help.
    Unschedulable,
    /// The pod does not fit and removing pods would not change that.
    UnschedulableAndUnresolvable,
    /// The plugin has nothing to do for this pod (its later points are skipped).
    Skip,
}

/// A plugin's answer: a code and the reasons shown to users ("Insufficient cpu").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
    pub plugin: &'static str,
}

impl Status {
    pub fn success() -> Status {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn skip() -> Status {
        Status {
            code: Code::Skip,
            ..Status::success()
        }
    }

    pub fn new(code: Code, reason: impl Into<String>) -> Status {
        Status {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    pub fn unschedulable(reason: impl Into<String>) -> Status {
        Status::new(Code::Unschedulable, reason)
    }

    pub fn unresolvable(reason: impl Into<String>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    pub fn error(reason: impl Into<String>) -> Status {
        Status::new(Code::Error, reason)
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }

    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }

    pub fn with_plugin(mut self, plugin: &'static str) -> Status {
        self.plugin = plugin;
        self
    }
}

/// Data a plugin keeps for one cycle: any clonable value (preemption clones the state to try
/// removing pods).
pub trait StateData: Any + Send + Sync {
    fn clone_data(&self) -> Box<dyn StateData>;
}

impl<T: Any + Send + Sync + Clone> StateData for T {
    fn clone_data(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
}

/// Data plugins keep for one scheduling cycle, by plugin name (upstream's `CycleState`).
/// A handful of entries read once per node per plugin: a short list beats hashing the key.
#[derive(Default)]
pub struct CycleState {
    data: Vec<(&'static str, Box<dyn StateData>)>,
    /// Plugins whose PreFilter / PreScore answered Skip: their Filter / Score do not run.
    pub skip_filter: Vec<&'static str>,
    pub skip_score: Vec<&'static str>,
}

impl Clone for CycleState {
    fn clone(&self) -> CycleState {
        CycleState {
            data: self.data.iter().map(|(k, v)| (*k, (**v).clone_data())).collect(),
            skip_filter: self.skip_filter.clone(),
            skip_score: self.skip_score.clone(),
        }
    }
}

impl CycleState {
    pub fn write<T: StateData>(&mut self, key: &'static str, value: T) {
        match self.data.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = Box::new(value),
            None => self.data.push((key, Box::new(value))),
        }
    }

    pub fn read<T: Any>(&self, key: &'static str) -> Option<&T> {
        let (_, v) = self.data.iter().find(|(k, _)| *k == key)?;
        let data: &dyn Any = v.as_ref();
        data.downcast_ref()
    }

    pub fn read_mut<T: Any>(&mut self, key: &'static str) -> Option<&mut T> {
        let (_, v) = self.data.iter_mut().find(|(k, _)| *k == key)?;
        let data: &mut dyn Any = v.as_mut();
        data.downcast_mut()
    }
}

/// PreFilter may narrow the nodes worth filtering (e.g. node affinity on `metadata.name`).
pub type PreFilterResult = Option<HashSet<String>>;

/// Every plugin has a name and says which extension points it implements.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        None
    }
    fn pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    fn post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        None
    }
    fn pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    fn score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
    fn reserve(&self) -> Option<&dyn ReservePlugin> {
        None
    }
    fn bind(&self) -> Option<&dyn BindPlugin> {
        None
    }
}

/// Orders the active queue: the key of the pod to pop first is the smallest.
pub trait QueueSortPlugin: Send + Sync {
    fn sort_key(&self, pod: &PodInfo, queued_at: std::time::Instant) -> (i64, std::time::Instant);
}

pub trait PreFilterPlugin: Send + Sync {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status);
    /// Preemption's what-if: `removed` leaves (or, with `added`, joins) `node`; plugins whose
    /// PreFilter state counts other pods adjust it. Default: nothing to adjust.
    fn add_pod(&self, _state: &mut CycleState, _pod: &PodInfo, _added: &PodInfo, _node: &NodeInfo) {}
    fn remove_pod(&self, _state: &mut CycleState, _pod: &PodInfo, _removed: &PodInfo, _node: &NodeInfo) {}
}

pub trait FilterPlugin: Send + Sync {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// Per-node filter outcomes of a failed cycle (nodes absent from it were not evaluated).
pub type NodeToStatus = HashMap<String, Status>;

/// What a PostFilter plugin may ask of the scheduler.
pub struct PostFilterContext<'a> {
    pub framework: &'a Framework,
    pub snapshot: &'a Snapshot,
    pub state: &'a CycleState,
}

pub trait PostFilterPlugin: Send + Sync {
    /// Returns the node the pod is nominated to, if any.
    fn post_filter(
        &self,
        ctx: &PostFilterContext<'_>,
        pod: &PodInfo,
        statuses: &NodeToStatus,
    ) -> (Option<String>, Status);
}

pub trait PreScorePlugin: Send + Sync {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status;
}

pub trait ScorePlugin: Send + Sync {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64;
    /// Brings raw scores into 0..=MAX_NODE_SCORE (upstream's ScoreExtensions). Default: as is.
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, _nodes: &[Arc<NodeInfo>], _scores: &mut [i64]) {}
}

pub trait ReservePlugin: Send + Sync {
    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status;
    fn unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str);
}

pub trait BindPlugin: Send + Sync {
    /// Writes the binding; runs off the scheduling loop. Err carries the API's message.
    fn bind(&self, pod: Arc<Pod>, node: String) -> BoxFuture<'static, Result<(), String>>;
}

/// A profile: the plugins of each extension point in order, and the score weights.
pub struct Framework {
    pub scheduler_name: String,
    pub queue_sort: Arc<dyn Plugin>,
    pub pre_filter: Vec<Arc<dyn Plugin>>,
    pub filter: Vec<Arc<dyn Plugin>>,
    pub post_filter: Vec<Arc<dyn Plugin>>,
    pub pre_score: Vec<Arc<dyn Plugin>>,
    pub score: Vec<(Arc<dyn Plugin>, i64)>,
    pub reserve: Vec<Arc<dyn Plugin>>,
    pub bind: Vec<Arc<dyn Plugin>>,
    /// Percentage of nodes to find feasible before scoring; 0 = upstream's adaptive default.
    pub percentage_of_nodes_to_score: u32,
}
