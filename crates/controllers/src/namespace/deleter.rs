//! One pass over a terminating namespace (upstream's `namespacedResourcesDeleter.Delete`):
//! phase Terminating, every namespaced resource the discovery reports deleted (a
//! deletecollection where served, else one by one; Background propagation so nothing is
//! orphaned), the status conditions updated, and — once nothing is left — the `kubernetes`
//! finalizer removed.

use std::collections::BTreeMap;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Namespace, NamespaceStatus, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::status::Conditions;
use crate::discovery::{Resources, Served};

/// The `spec.finalizers` token this controller owns.
const FINALIZER: &str = "kubernetes";
/// How long objects held by finalizers are given before the namespace is looked at again.
const FINALIZER_ESTIMATE_SECONDS: u64 = 15;

pub enum Outcome {
    /// Nothing (more) to do.
    Done,
    /// Content is still going; look again after half the estimate.
    Remaining { estimate_seconds: u64 },
}

fn is(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == code)
}

pub async fn delete(client: &kube::Client, name: &str) -> anyhow::Result<Outcome> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let Some(mut ns) = namespaces.get_opt(name).await? else {
        return Ok(Outcome::Done);
    };
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Outcome::Done);
    }
    if ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating") {
        ns.status.get_or_insert_with(NamespaceStatus::default).phase = Some("Terminating".into());
        ns = match write_status(&namespaces, &ns).await {
            Ok(ns) => ns,
            Err(err) if is(&err, 404) => return Ok(Outcome::Done),
            // Someone else wrote it meanwhile: start over with the latest.
            Err(err) if is(&err, 409) => return Err(err).context("namespace changed"),
            Err(err) => return Err(err.into()),
        };
    }
    if finalized(&ns) {
        return Ok(Outcome::Done);
    }
    let estimate = delete_all_content(client, &namespaces, &mut ns).await?;
    if estimate > 0 {
        return Ok(Outcome::Remaining {
            estimate_seconds: estimate,
        });
    }
    finalize(&namespaces, ns).await?;
    Ok(Outcome::Done)
}

fn finalized(ns: &Namespace) -> bool {
    !ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

async fn write_status(api: &Api<Namespace>, ns: &Namespace) -> Result<Namespace, kube::Error> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    api.replace_status(&name, &PostParams::default(), ns).await
}

/// Removes our token from `spec.finalizers` through the finalize subresource, retrying
/// against concurrent writers.
async fn finalize(api: &Api<Namespace>, mut ns: Namespace) -> anyhow::Result<()> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    for _ in 0..5 {
        if let Some(spec) = ns.spec.as_mut() {
            spec.finalizers
                .get_or_insert_with(Vec::new)
                .retain(|f| f != FINALIZER);
        }
        match api
            .replace_subresource("finalize", &name, &PostParams::default(), &ns)
            .await
        {
            Ok(_) => return Ok(()),
            Err(err) if is(&err, 404) => return Ok(()),
            Err(err) if is(&err, 409) => match api.get_opt(&name).await? {
                Some(latest) => ns = latest,
                None => return Ok(()),
            },
            Err(err) => return Err(err.into()),
        }
    }
    anyhow::bail!("namespace {name} kept changing while being finalized")
}

/// What is left of one resource after a deletion pass.
#[derive(Default)]
struct Left {
    estimate: u64,
    remaining: usize,
    finalizers: BTreeMap<String, usize>,
}

/// Deletes everything in the namespace; the seconds to wait before looking again (0: empty).
/// The namespace's status conditions are updated on the way.
async fn delete_all_content(
    client: &kube::Client,
    api: &Api<Namespace>,
    ns: &mut Namespace,
) -> anyhow::Result<u64> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    let mut conditions = Conditions::default();
    let mut errors = Vec::new();
    let resources = match Resources::discover(client).await {
        Ok(r) => r.preferred(),
        Err(err) => {
            // Not fatal: whatever was discovered is still deleted.
            conditions.discovery_failed(err.to_string());
            errors.push(err.to_string());
            Vec::new()
        }
    };
    let (mut estimate, mut remaining, mut finalizers) = (0, BTreeMap::new(), BTreeMap::new());
    for served in resources.iter().filter(|s| s.namespaced && s.supports("delete")) {
        let (left, err) = delete_all_of(client, served, &name).await;
        estimate = estimate.max(left.estimate);
        if left.remaining > 0 {
            remaining.insert(served.group_resource(), left.remaining);
            for (f, n) in left.finalizers {
                *finalizers.entry(f).or_default() += n;
            }
        }
        if let Some(err) = err {
            conditions.delete_failed(err.clone());
            errors.push(err);
        }
    }
    conditions.content_totals(&remaining, &finalizers);
    let mut status = ns.status.clone().unwrap_or_default();
    if conditions.update(&mut status) {
        ns.status = Some(status);
        match write_status(api, ns).await {
            Ok(updated) => *ns = updated,
            Err(err) => tracing::info!(namespace = %name, "couldn't update status condition: {err}"),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join(", "));
    }
    Ok(estimate)
}

/// Upstream's `GroupVersionResource` as `%v` prints it.
fn gvr(served: &Served) -> String {
    let r = &served.resource;
    format!("{}/{}, Resource={}", r.group, r.version, r.plural)
}

/// Deletes one resource's objects in the namespace and says what is left (with the error
/// that stopped it, if any).
async fn delete_all_of(client: &kube::Client, served: &Served, namespace: &str) -> (Left, Option<String>) {
    let api = served.api(client, Some(namespace));
    let mut left = Left::default();
    if (served.resource.group.as_str(), served.resource.plural.as_str()) == ("", "pods") {
        match estimate_pods(client, namespace).await {
            Ok(seconds) => left.estimate = seconds,
            Err(err) => return (left, Some(err.to_string())),
        }
    }
    let background = DeleteParams::background();
    let mut each = !served.supports("deletecollection");
    if !each {
        match api.delete_collection(&background, &ListParams::default()).await {
            Ok(_) => {}
            // Served in discovery but not really: fall back to one by one.
            Err(err) if is(&err, 405) || is(&err, 404) => each = true,
            Err(err) => return (left, Some(err.to_string())),
        }
    }
    if !served.supports("list") {
        return (left, None);
    }
    if each {
        let items = match api.list_metadata(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(err) => return (left, Some(err.to_string())),
        };
        for item in items {
            let name = item.metadata.name.unwrap_or_default();
            match api.delete(&name, &background).await {
                Ok(_) => {}
                Err(err) if is(&err, 404) => {}
                Err(err) => return (left, Some(err.to_string())),
            }
        }
    }
    let items = match api.list_metadata(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(err) => return (left, Some(err.to_string())),
    };
    left.remaining = items.len();
    if items.is_empty() || left.estimate > 0 {
        return (left, None);
    }
    for item in &items {
        for f in item.metadata.finalizers.iter().flatten() {
            *left.finalizers.entry(f.clone()).or_default() += 1;
        }
    }
    if !left.finalizers.is_empty() {
        // Finalizers are normal: give them time.
        left.estimate = FINALIZER_ESTIMATE_SECONDS;
        return (left, None);
    }
    let err = format!(
        "unexpected items still remain in namespace: {namespace} for gvr: {}",
        gvr(served)
    );
    (left, Some(err))
}

/// The longest termination grace period of the namespace's pods that have not terminated.
async fn estimate_pods(client: &kube::Client, namespace: &str) -> Result<u64, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .filter_map(|p| p.spec.as_ref()?.termination_grace_period_seconds)
        .map(|g| g.max(0) as u64)
        .max()
        .unwrap_or(0))
}
