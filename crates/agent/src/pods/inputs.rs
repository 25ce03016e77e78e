//! What a container gets from outside its image: volumes mounted into it and its environment.
//! The worker asks this adapter; it holds the node's volume manager ([`crate::volumes`]) and
//! resolves env ([`crate::env`]), both sharing one cache of the ConfigMaps, Secrets and
//! Services pods refer to.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Container, Node as NodeObject, Pod};
use kube::Api;
use runtime::Mount;

use crate::downward::NodeFacts;
use crate::volumes::{PodVolumes, Volumes};

pub struct Inputs {
    client: kube::Client,
    recorder: clientkit::events::Recorder,
    volumes: Volumes,
    node: NodeFacts,
    /// The node's allocatable, read from the Node once (what unset limits read as).
    allocatable: tokio::sync::Mutex<Option<BTreeMap<String, String>>>,
    /// Each pod's ready volumes, from its latest `setup`.
    ready: Mutex<HashMap<String, PodVolumes>>,
}

impl Inputs {
    /// Must be called inside a Tokio runtime (the volume manager starts its refresh task).
    pub fn new(
        client: kube::Client,
        recorder: clientkit::events::Recorder,
        pods_dir: PathBuf,
        node_name: &str,
        node_ip: IpAddr,
    ) -> Inputs {
        Inputs {
            recorder,
            volumes: Volumes::new(client.clone(), pods_dir),
            client,
            node: NodeFacts {
                node_name: node_name.to_owned(),
                host_ips: vec![node_ip.to_string()],
                allocatable: BTreeMap::new(),
            },
            allocatable: tokio::sync::Mutex::new(None),
            ready: Mutex::new(HashMap::new()),
        }
    }

    async fn node_facts(&self) -> NodeFacts {
        let mut allocatable = self.allocatable.lock().await;
        if allocatable.is_none() {
            let nodes: Api<NodeObject> = Api::all(self.client.clone());
            if let Ok(node) = nodes.get(&self.node.node_name).await
                && let Some(found) = node.status.and_then(|s| s.allocatable)
            {
                let found: BTreeMap<String, String> = found.into_iter().map(|(k, q)| (k, q.0)).collect();
                let mut facts = self.node.clone();
                facts.allocatable = found.clone();
                self.volumes.set_node(facts);
                *allocatable = Some(found);
            }
        }
        NodeFacts {
            allocatable: allocatable.clone().unwrap_or_default(),
            ..self.node.clone()
        }
    }

    /// Makes the pod's volumes ready; the error is the FailedMount event's message.
    pub async fn setup(&self, pod: &Pod) -> Result<(), String> {
        self.node_facts().await;
        let ready = self.volumes.setup(pod).await.map_err(|e| e.to_string())?;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.ready.lock().expect("not poisoned").insert(uid, ready);
        Ok(())
    }

    /// The container's mounts from its volumeMounts (`env` expands `subPathExpr`).
    pub fn mounts(
        &self,
        pod: &Pod,
        container: &Container,
        env: &[(String, String)],
    ) -> Result<Vec<Mount>, String> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ready = self
            .ready
            .lock()
            .expect("not poisoned")
            .get(&uid)
            .cloned()
            .unwrap_or_default();
        self.volumes
            .mounts(pod, container, &ready, env)
            .map_err(|e| e.to_string())
    }

    /// The container's environment; the error is the CreateContainerConfigError message.
    pub async fn container_env(
        &self,
        pod: &Pod,
        container: &Container,
        pod_ips: &[IpAddr],
    ) -> Result<Vec<(String, String)>, String> {
        let node = self.node_facts().await;
        let ips: Vec<String> = pod_ips.iter().map(IpAddr::to_string).collect();
        let env = crate::env::container_environment(self.volumes.objects(), pod, container, &node, &ips)
            .await
            .map_err(|e| e.to_string())?;
        for warning in &env.warnings {
            let pod_ref = clientkit::events::reference(pod);
            let kind = clientkit::events::EventType::Warning;
            self.recorder
                .record(&pod_ref, kind, "InvalidEnvironmentVariableNames", warning)
                .await;
        }
        Ok(env.vars)
    }

    /// Unmounts and removes the pod's volumes.
    pub async fn teardown(&self, uid: &str) -> anyhow::Result<()> {
        self.ready.lock().expect("not poisoned").remove(uid);
        self.volumes
            .teardown(uid)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}
