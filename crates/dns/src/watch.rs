//! Keeps the [`Index`] current from kube-rs watchers (all namespaces): Namespaces, Services and
//! EndpointSlices. A relist (the watcher's `Init` … `InitDone`) replaces a kind's entries at once,
//! so objects deleted while the watch was down disappear too.

use std::fmt::Debug;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::index::Index;

/// How many kinds are watched: `run` reports each one's first complete list on `synced`.
pub(crate) const KINDS: usize = 3;

/// Watches until dropped; sends one message on `synced` per kind once its first list is in.
pub(crate) async fn run(client: Client, index: Arc<RwLock<Index>>, synced: mpsc::Sender<()>) {
    tokio::join!(
        watch(
            Api::<Namespace>::all(client.clone()),
            &index,
            &synced,
            Kind {
                apply: Index::apply_namespace,
                delete: Index::delete_namespace,
                replace: Index::replace_namespaces,
            },
        ),
        watch(
            Api::<Service>::all(client.clone()),
            &index,
            &synced,
            Kind {
                apply: Index::apply_service,
                delete: Index::delete_service,
                replace: Index::replace_services,
            },
        ),
        watch(
            Api::<EndpointSlice>::all(client),
            &index,
            &synced,
            Kind {
                apply: Index::apply_slice,
                delete: Index::delete_slice,
                replace: Index::replace_slices,
            },
        ),
    );
}

/// How one kind's events change the index.
struct Kind<K> {
    apply: fn(&mut Index, &K),
    delete: fn(&mut Index, &K),
    replace: fn(&mut Index, &[K]),
}

async fn watch<K>(api: Api<K>, index: &RwLock<Index>, synced: &mpsc::Sender<()>, kind: Kind<K>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let write = || index.write().unwrap_or_else(|e| e.into_inner());
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed = Vec::new();
    let mut first_list = true;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(object)) => listed.push(object),
            Ok(Event::InitDone) => {
                (kind.replace)(&mut write(), &listed);
                listed.clear();
                if std::mem::take(&mut first_list) {
                    let _ = synced.send(()).await;
                }
            }
            Ok(Event::Apply(object)) => (kind.apply)(&mut write(), &object),
            Ok(Event::Delete(object)) => (kind.delete)(&mut write(), &object),
            Err(error) => {
                tracing::warn!(%error, kind = %K::kind(&Default::default()), "DNS watch failed; retrying")
            }
        }
    }
}
