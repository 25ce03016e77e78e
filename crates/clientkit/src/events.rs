//! Recording core/v1 Events about objects, as client-go's `record.EventRecorder` does for
//! kube-controller-manager: what `kubectl describe` shows under "Events:".
//!
//! Repeats of the same event (same object, type, reason and message) are folded into the
//! first one — its `count` goes up and `lastTimestamp` moves — instead of writing a new Event
//! each time, as client-go's event correlator does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};

/// How many distinct events a recorder remembers for folding repeats (client-go: 4096).
const MAX_REMEMBERED: usize = 4096;

/// `Normal` or `Warning`, the two event types upstream uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Writes Events on behalf of one component (`source.component`, e.g. `deployment-controller`).
/// Cheap to clone; clones share the memory of recent events.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: String,
    host: Option<String>,
    recent: Arc<Mutex<HashMap<String, Remembered>>>,
}

/// A recent event by its folding key: where it is and how many times it happened.
#[derive(Clone)]
struct Remembered {
    namespace: String,
    name: String,
    count: i32,
}

impl Recorder {
    pub fn new(client: kube::Client, component: &str) -> Recorder {
        Recorder {
            client,
            component: component.to_owned(),
            host: None,
            recent: Arc::default(),
        }
    }

    /// Sets `source.host` (the kubelet's node name; controllers leave it empty).
    pub fn with_host(mut self, host: &str) -> Recorder {
        self.host = Some(host.to_owned());
        self
    }

    /// Records an event about `object`. Failures are logged, never returned: like upstream,
    /// an event that cannot be written must not fail the work it describes.
    pub async fn record(&self, object: &ObjectReference, kind: EventType, reason: &str, message: &str) {
        if let Err(err) = self.write(object, kind, reason, message).await {
            tracing::debug!(component = %self.component, reason, "cannot record an event: {err}");
        }
    }

    async fn write(
        &self,
        object: &ObjectReference,
        kind: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        // Events about cluster-scoped objects live in `default`, as upstream's.
        let namespace = object
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Time(jiff::Timestamp::now());
        let key = format!(
            "{}/{}/{}/{}/{}/{}/{}",
            namespace,
            object.kind.as_deref().unwrap_or_default(),
            object.name.as_deref().unwrap_or_default(),
            object.uid.as_deref().unwrap_or_default(),
            kind.as_str(),
            reason,
            message
        );
        let seen = self.recent.lock().expect("events lock").get(&key).cloned();
        if let Some(Remembered {
            namespace: ns,
            name,
            count,
        }) = seen
        {
            let patch = serde_json::json!({"count": count + 1, "lastTimestamp": now});
            let patched = Api::<Event>::namespaced(self.client.clone(), &ns)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            match patched {
                Ok(_) => {
                    self.remember(key, ns, name, count + 1);
                    return Ok(());
                }
                // The first one was deleted (events expire): write a new one.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => return Err(err),
            }
        }
        let name = format!(
            "{}.{:x}",
            object.name.as_deref().unwrap_or("unknown"),
            now.0.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: object.clone(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            type_: Some(kind.as_str().to_owned()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone().unwrap_or_default()),
            ..Event::default()
        };
        events.create(&PostParams::default(), &event).await?;
        self.remember(key, namespace, name, 1);
        Ok(())
    }

    fn remember(&self, key: String, namespace: String, name: String, count: i32) {
        let mut recent = self.recent.lock().expect("events lock");
        if recent.len() >= MAX_REMEMBERED && !recent.contains_key(&key) {
            recent.clear();
        }
        recent.insert(
            key,
            Remembered {
                namespace,
                name,
                count,
            },
        );
    }
}

/// A reference to `object` for an Event's `involvedObject`.
pub fn reference<K>(object: &K) -> ObjectReference
where
    K: kube::Resource<DynamicType = ()>,
{
    let meta = object.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}
