//! The API objects pods refer to — ConfigMaps, Secrets, Services — kept current by one watch
//! per kind per namespace, started when a pod of that namespace first needs them (the
//! kubelet's watch-based ConfigMap / Secret managers do the same per object). Every change is
//! announced on [`ObjectCache::subscribe`] with its namespace, which is how configMap / secret /
//! projected volumes follow their objects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::broadcast;

/// How long the first use of a namespace waits for its initial lists.
const SYNC_TIMEOUT: Duration = Duration::from_secs(15);

/// The watched objects of one namespace.
struct Namespace {
    config_maps: Store<ConfigMap>,
    secrets: Store<Secret>,
    services: Store<Service>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// See the module docs.
pub struct ObjectCache {
    client: kube::Client,
    namespaces: Mutex<HashMap<String, Arc<Namespace>>>,
    changes: broadcast::Sender<String>,
}

impl ObjectCache {
    pub fn new(client: kube::Client) -> Arc<ObjectCache> {
        Arc::new(ObjectCache {
            client,
            namespaces: Mutex::new(HashMap::new()),
            changes: broadcast::channel(1024).0,
        })
    }

    /// Namespaces whose ConfigMaps, Secrets or Services changed (a lagging receiver should
    /// treat every namespace as changed).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    fn watch<K>(&self, namespace: &str) -> (Store<K>, tokio::task::JoinHandle<()>)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        let (store, writer) = reflector::store::<K>();
        let events = reflector::reflector(
            writer,
            watcher(
                Api::<K>::namespaced(self.client.clone(), namespace),
                watcher::Config::default(),
            ),
        )
        .default_backoff();
        let (changes, namespace) = (self.changes.clone(), namespace.to_owned());
        let task = tokio::spawn(async move {
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) => {
                        let _ = changes.send(namespace.clone());
                    }
                    Ok(_) => {}
                    Err(err) => tracing::debug!(%namespace, "object watch: {err}"),
                }
            }
        });
        (store, task)
    }

    async fn namespace(&self, namespace: &str) -> Result<Arc<Namespace>, String> {
        let ns = {
            let mut namespaces = self.namespaces.lock().expect("not poisoned");
            match namespaces.get(namespace) {
                Some(ns) => ns.clone(),
                None => {
                    let (config_maps, a) = self.watch::<ConfigMap>(namespace);
                    let (secrets, b) = self.watch::<Secret>(namespace);
                    let (services, c) = self.watch::<Service>(namespace);
                    let ns = Arc::new(Namespace {
                        config_maps,
                        secrets,
                        services,
                        tasks: vec![a, b, c],
                    });
                    namespaces.insert(namespace.to_owned(), ns.clone());
                    ns
                }
            }
        };
        let ready = async {
            ns.config_maps.wait_until_ready().await.ok();
            ns.secrets.wait_until_ready().await.ok();
            ns.services.wait_until_ready().await.ok();
        };
        tokio::time::timeout(SYNC_TIMEOUT, ready)
            .await
            .map_err(|_| format!("timed out waiting for the objects of namespace {namespace:?}"))?;
        Ok(ns)
    }

    /// The ConfigMap, `Ok(None)` if it does not exist.
    pub async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<Arc<ConfigMap>>, String> {
        let ns = self.namespace(namespace).await?;
        Ok(ns.config_maps.get(&ObjectRef::new(name).within(namespace)))
    }

    /// The Secret, `Ok(None)` if it does not exist.
    pub async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Arc<Secret>>, String> {
        let ns = self.namespace(namespace).await?;
        Ok(ns.secrets.get(&ObjectRef::new(name).within(namespace)))
    }

    /// The namespace's Services.
    pub async fn services(&self, namespace: &str) -> Result<Vec<Arc<Service>>, String> {
        let ns = self.namespace(namespace).await?;
        Ok(ns.services.state())
    }

    /// Stops watching namespaces no live pod uses.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.namespaces
            .lock()
            .expect("not poisoned")
            .retain(|ns, _| keep(ns));
    }
}
