//! [`run`]: Services and EndpointSlices watched into reflector stores; every change wakes the
//! sync loop, which waits [`Config::min_sync`] for more changes, then programs them together.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector};
use tokio::sync::Notify;

use crate::{Config, Proxier};

/// Objects labelled for another proxy are not ours (kube-proxy's informer selectors).
const SERVICE_SELECTOR: &str = "!service.kubernetes.io/service-proxy-name";
const SLICE_SELECTOR: &str = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";
/// After a failed sync, try again (as a full sync) this soon.
const RETRY: Duration = Duration::from_secs(1);
/// A full resync now and then repairs rules someone else changed (kube-proxy: hourly).
const FULL_RESYNC: Duration = Duration::from_secs(3600);

/// Aborts a spawned task when dropped: the watchers live exactly as long as [`run`]'s future.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn drive<S, T, E>(stream: S, notify: Arc<Notify>, what: &'static str) -> Task
where
    S: Stream<Item = Result<T, E>> + Send + 'static,
    T: Send,
    E: std::fmt::Display + Send,
{
    Task(tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => notify.notify_one(),
                Err(e) => tracing::warn!("{what} watch: {e}"),
            }
        }
    }))
}

/// Watches Services and EndpointSlices and keeps the rules in sync until the future is
/// dropped. Rules stay in place afterwards (as kube-proxy's do).
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let min_sync = config.min_sync;
    let mut proxier = Proxier::new(config).await;
    let notify = Arc::new(Notify::new());
    let (services, svc_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let svc_stream = reflector(
        svc_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default().labels(SERVICE_SELECTOR),
        )
        .default_backoff(),
    );
    let slice_stream = reflector(
        slice_writer,
        watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default().labels(SLICE_SELECTOR),
        )
        .default_backoff(),
    );
    let _watchers = [
        drive(svc_stream, notify.clone(), "Service"),
        drive(slice_stream, notify.clone(), "EndpointSlice"),
    ];
    services.wait_until_ready().await?;
    slices.wait_until_ready().await?;
    let mut last_full = tokio::time::Instant::now();
    loop {
        if last_full.elapsed() >= FULL_RESYNC {
            proxier.force_full_sync();
            last_full = tokio::time::Instant::now();
        }
        let wait = match proxier.sync(&services.state(), &slices.state()).await {
            Ok(stats) => {
                tracing::debug!(?stats, "proxy rules synced");
                FULL_RESYNC
            }
            Err(e) => {
                tracing::warn!("programming service rules: {e:#}");
                RETRY
            }
        };
        tokio::select! {
            _ = notify.notified() => tokio::time::sleep(min_sync).await,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
