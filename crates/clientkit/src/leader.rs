//! Leader election on a coordination.k8s.io/v1 Lease, with client-go's `leaderelection`
//! semantics, so that several `rkube server`s over one datastore run each controller once.
//!
//! A candidate holds the lease while it renews `spec.renewTime` at least every
//! `renew_deadline`. Another candidate takes over only once it has watched the lease's record stay
//! unchanged for `lease_duration` — measured on its own clock from when it observed the record,
//! never by comparing timestamps across machines. Every write is a compare-and-swap on the
//! lease's resourceVersion, so two candidates can never both win the same round.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::time::Instant;

/// Which lease to hold and how (upstream's defaults for kube-controller-manager and
/// kube-scheduler: 15 s lease, 10 s renew deadline, 2 s retry period).
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This candidate's `holderIdentity` (upstream: `<hostname>_<uuid>`).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A lease in kube-system named after the component (`kube-controller-manager`,
    /// `kube-scheduler`), with upstream's timings.
    pub fn new(name: &str, identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: "kube-system".to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A candidate for one lease.
pub struct LeaderElection {
    leases: Api<Lease>,
    config: LeaseConfig,
    /// The last record seen (holder, renewTime, resourceVersion) and when it was first seen.
    observed: Option<(Observed, Instant)>,
}

#[derive(Clone, Debug, PartialEq)]
struct Observed {
    holder: String,
    renew_time: Option<MicroTime>,
    resource_version: Option<String>,
}

impl LeaderElection {
    pub fn new(client: kube::Client, config: LeaseConfig) -> LeaderElection {
        LeaderElection {
            leases: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    /// Runs `work` each time this candidate becomes the leader, for as long as it stays leader.
    /// When the lease is lost, the running `work` is dropped (cancelled) and the candidate
    /// campaigns again. Returns when `work` itself returns.
    pub async fn run<F, Fut>(mut self, mut work: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        loop {
            self.acquire().await;
            tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became leader");
            let finished = tokio::select! {
                result = work() => Some(result),
                () = self.keep_renewing() => None,
            };
            if let Some(result) = finished {
                self.release().await;
                return result;
            }
            tracing::warn!(lease = %self.config.name, "leader lease lost; stopping until re-elected");
        }
    }

    /// Waits until this candidate holds the lease.
    async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(err) => tracing::debug!(lease = %self.config.name, "cannot acquire: {err}"),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews every retry period; returns once renewing has failed for `renew_deadline`.
    async fn keep_renewing(&mut self) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => return,
                Err(err) => {
                    tracing::debug!(lease = %self.config.name, "cannot renew: {err}");
                    if last_renewed.elapsed() >= self.config.renew_deadline {
                        return;
                    }
                }
            }
        }
    }

    /// One round of client-go's `tryAcquireOrRenew`: `Ok(true)` when we hold the lease after it.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let lease_seconds = self.config.lease_duration.as_secs() as i32;
        let Some(mut lease) = self.leases.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(lease_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.leases.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(true)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(err) => Err(err),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_by_me = holder == self.config.identity;
        if !held_by_me && !holder.is_empty() {
            let duration = spec
                .lease_duration_seconds
                .map_or(self.config.lease_duration, |s| {
                    Duration::from_secs(s.max(1) as u64)
                });
            let (_, seen_at) = self.observed.as_ref().expect("observed above");
            if seen_at.elapsed() < duration {
                return Ok(false);
            }
        }
        if !held_by_me {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(self.config.identity.clone());
        }
        spec.lease_duration_seconds = Some(lease_seconds);
        spec.renew_time = Some(now);
        match self
            .leases
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(&updated);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Remembers the lease's record, restarting the clock when it changed.
    fn observe(&mut self, lease: &Lease) {
        let spec = lease.spec.as_ref();
        let record = Observed {
            holder: spec.and_then(|s| s.holder_identity.clone()).unwrap_or_default(),
            renew_time: spec.and_then(|s| s.renew_time.clone()),
            resource_version: lease.metadata.resource_version.clone(),
        };
        if self.observed.as_ref().is_none_or(|(seen, _)| *seen != record) {
            self.observed = Some((record, Instant::now()));
        }
    }

    /// Gives the lease up (empty holder) so another candidate need not wait it out, as
    /// client-go's `ReleaseOnCancel`.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.leases.get_opt(&self.config.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        let now = MicroTime(jiff::Timestamp::now());
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        let _ = self
            .leases
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await;
    }
}
