//! Subresources that are not the object itself: `scale` (autoscaling/v1 Scale over a
//! workload's `spec.replicas`), `pods/binding` (and the `bindings` resource) that assigns a
//! pod to a node, and `pods/eviction` that deletes a pod unless a PodDisruptionBudget forbids
//! it. `status` is handled by the generic handlers.

use std::collections::BTreeMap;

use apimachinery::resources::{self, ResourceDef};
use apimachinery::selector::LabelSelector;
use apimachinery::status::{ApiError, Cause, Details};
use http::StatusCode;
use serde_json::{Value, json};
use store::{KeyRange, RangeRequest};

use crate::apply::Ownership;
use crate::objects::{self, from_store, now_rfc3339};
use crate::query::Query;
use crate::request::{ResourceRequest, Verb};
use crate::rest::{Rest, store_error};

/// Whether this module serves `sub` of `def` (the router sends those here).
pub fn serves(def: &ResourceDef, sub: Option<&str>) -> bool {
    match sub {
        Some("scale") => def.has_subresource("scale"),
        Some("binding" | "eviction") => (def.group, def.plural) == ("", "pods"),
        None => (def.group, def.plural) == ("", "bindings"),
        _ => false,
    }
}

pub async fn serve(
    rest: &Rest,
    def: &ResourceDef,
    req: &ResourceRequest,
    query: &Query,
    content_type: &str,
    body: Option<Value>,
    raw: &[u8],
) -> Result<(StatusCode, Value), ApiError> {
    match (req.subresource.as_deref(), req.verb) {
        (Some("scale"), Verb::Get) => Ok((StatusCode::OK, scale_of(def, &rest.get(def, &main(req)).await?))),
        (Some("scale"), Verb::Update) => {
            let scale = body.unwrap_or_default();
            let expected = objects::resource_version(&scale)?;
            set_replicas(rest, def, req, query, expected, move |_| Ok(scale.clone())).await
        }
        (Some("scale"), Verb::Patch) => {
            let patch: Value = serde_json::from_slice(raw)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let json_patch = match content_type.split(';').next().unwrap_or("").trim() {
                "application/json-patch+json" => true,
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => false,
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            let expected = if json_patch {
                None
            } else {
                objects::resource_version(&patch)?
            };
            set_replicas(rest, def, req, query, expected, move |mut scale| {
                if json_patch {
                    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                    json_patch::patch(&mut scale, &ops).map_err(|e| ApiError::bad_request(e.to_string()))?;
                } else {
                    json_patch::merge(&mut scale, &patch);
                }
                Ok(scale)
            })
            .await
        }
        (Some("binding"), Verb::Create) | (None, Verb::Create) => {
            bind(rest, req, body.unwrap_or_default()).await
        }
        (Some("eviction"), Verb::Create) => evict(rest, req, query, body.unwrap_or_default()).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The request for the object a subresource belongs to.
fn main(req: &ResourceRequest) -> ResourceRequest {
    ResourceRequest {
        subresource: None,
        ..req.clone()
    }
}

/// The autoscaling/v1 Scale of a workload.
fn scale_of(def: &ResourceDef, obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let selector = if def.plural == "replicationcontrollers" {
        let set: BTreeMap<String, String> = obj["spec"]["selector"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        LabelSelector::from_set(&set).to_string()
    } else {
        LabelSelector::from_json(&obj["spec"]["selector"])
            .map(|s| s.to_string())
            .unwrap_or_default()
    };
    let mut status = json!({"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0)});
    if !selector.is_empty() {
        status["selector"] = selector.into();
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": status,
    })
}

/// Updates `spec.replicas` from the Scale `change` makes of the current one.
async fn set_replicas(
    rest: &Rest,
    def: &ResourceDef,
    req: &ResourceRequest,
    query: &Query,
    expected: Option<i64>,
    change: impl Fn(Value) -> Result<Value, ApiError>,
) -> Result<(StatusCode, Value), ApiError> {
    let name = req.name.clone().unwrap_or_default();
    let updated = rest
        .guaranteed_update(
            def,
            &main(req),
            expected,
            query.dry_run()?,
            &Ownership::track(def, req, query)?,
            |current| {
                let scale = change(scale_of(def, current))?;
                let replicas = &scale["spec"]["replicas"];
                let invalid = |detail: &str| {
                    ApiError::invalid(
                        "autoscaling",
                        "Scale",
                        &name,
                        vec![Cause::invalid("spec.replicas", replicas, detail)],
                    )
                };
                let n = match replicas {
                    Value::Null => 0,
                    v => v.as_i64().ok_or_else(|| invalid("must be an integer"))?,
                };
                if n < 0 {
                    return Err(invalid("must be greater than or equal to 0"));
                }
                if n > i64::from(i32::MAX) {
                    return Err(invalid("must be less than or equal to 2147483647"));
                }
                let mut obj = current.clone();
                if !obj["spec"].is_object() {
                    obj["spec"] = json!({});
                }
                obj["spec"]["replicas"] = n.into();
                Ok(obj)
            },
        )
        .await?;
    Ok((StatusCode::OK, scale_of(def, &updated)))
}

fn pods() -> &'static ResourceDef {
    resources::find("", "v1", "pods").expect("built in")
}

/// `{"status": "Success", "code": 201}` as upstream answers bindings and evictions.
fn created() -> (StatusCode, Value) {
    (
        StatusCode::CREATED,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// Assigns the pod to the binding's node: spec.nodeName and a PodScheduled condition.
async fn bind(rest: &Rest, req: &ResourceRequest, binding: Value) -> Result<(StatusCode, Value), ApiError> {
    let name = req
        .name
        .clone()
        .or_else(|| objects::name(&binding).map(str::to_owned))
        .unwrap_or_default();
    if let Some(body_name) = objects::name(&binding)
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let node = binding["target"]["name"].as_str().unwrap_or_default().to_owned();
    let kind = binding["target"]["kind"].as_str().unwrap_or_default();
    let mut causes = Vec::new();
    if node.is_empty() {
        causes.push(Cause::required("target.name"));
    }
    if !kind.is_empty() && kind != "Node" {
        causes.push(Cause::not_supported("target.kind", &json!(kind), &["Node"]));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid("", "Binding", &name, causes));
    }
    let annotations = binding["metadata"]["annotations"].as_object().cloned();
    let gr = apimachinery::status::GroupResource {
        group: "",
        resource: "pods/binding",
    };
    let pod_req = ResourceRequest {
        resource: "pods".into(),
        name: Some(name.clone()),
        subresource: None,
        verb: Verb::Update,
        ..req.clone()
    };
    // (The binding's writer is the scheduler; bindings carry no field manager.)
    let ownership = Ownership::track(pods(), &pod_req, &Query::default())?;
    rest.guaranteed_update(pods(), &pod_req, None, false, &ownership, |current| {
        if objects::meta_str(current, "deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                gr,
                &name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        if let Some(assigned) = current["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict(
                gr,
                &name,
                &format!("pod {name} is already assigned to node {assigned:?}"),
            ));
        }
        let mut pod = current.clone();
        if !pod["spec"].is_object() {
            pod["spec"] = json!({});
        }
        pod["spec"]["nodeName"] = node.clone().into();
        if let Some(annotations) = &annotations {
            let meta = objects::metadata_mut(&mut pod);
            let existing = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(existing) = existing.as_object_mut() {
                existing.extend(annotations.clone());
            }
        }
        if !pod["status"].is_object() {
            pod["status"] = json!({});
        }
        let condition = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
            "lastTransitionTime": now_rfc3339()});
        match pod["status"]["conditions"].as_array_mut() {
            Some(conditions) => {
                conditions.retain(|c| c["type"] != "PodScheduled");
                conditions.push(condition);
            }
            None => pod["status"]["conditions"] = json!([condition]),
        }
        Ok(pod)
    })
    .await?;
    Ok(created())
}

/// Deletes the pod unless its PodDisruptionBudget allows no disruption now.
async fn evict(
    rest: &Rest,
    req: &ResourceRequest,
    query: &Query,
    eviction: Value,
) -> Result<(StatusCode, Value), ApiError> {
    let name = req.name.clone().unwrap_or_default();
    if let Some(body_name) = objects::name(&eviction)
        && body_name != name
    {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let pod_req = main(req);
    let pod = rest.get(pods(), &pod_req).await?;
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    // Pods that are done, not yet running or already going need no budget.
    let ignores_budget = matches!(phase, "Succeeded" | "Failed" | "Pending")
        || objects::meta_str(&pod, "deletionTimestamp").is_some();
    if !ignores_budget && let Some(pdb) = check_budget(rest, &pod).await? {
        take_disruption(rest, &pdb, &name).await?;
    }
    let mut options = eviction["deleteOptions"].clone();
    if !options.is_object() {
        options = json!({});
    }
    let body = serde_json::to_vec(&options).expect("JSON value");
    let delete_req = ResourceRequest {
        verb: Verb::Delete,
        ..pod_req
    };
    rest.delete(pods(), &delete_req, query, &body).await?;
    Ok(created())
}

/// The budget covering `pod` when it allows a disruption now; an error when it does not.
async fn check_budget(rest: &Rest, pod: &Value) -> Result<Option<Value>, ApiError> {
    let def = resources::find("policy", "v1", "poddisruptionbudgets").expect("built in");
    let namespace = objects::namespace(pod);
    let prefix = def.key_prefix(namespace);
    let resp = rest
        .store
        .range(RangeRequest::new(KeyRange::prefix(&prefix)))
        .await
        .map_err(store_error)?;
    let labels = pod["metadata"]["labels"].clone();
    let mut matching = Vec::new();
    for kv in resp.kvs {
        let pdb = from_store(&kv.value, kv.mod_revision)?;
        let selector =
            LabelSelector::from_json(&pdb["spec"]["selector"]).unwrap_or_else(|_| LabelSelector::nothing());
        // policy/v1: an empty selector selects every pod of the namespace, a missing one none.
        if selector.matches_json(Some(&labels)) {
            matching.push(pdb);
        }
    }
    let Some(pdb) = matching.first() else {
        return Ok(None);
    };
    if matching.len() > 1 {
        return Err(ApiError::internal(
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        ));
    }
    let pdb_name = objects::name(pdb).unwrap_or_default();
    let status = &pdb["status"];
    let observed = status["observedGeneration"].as_i64().unwrap_or(0);
    let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(0);
    if observed < generation {
        return Err(too_many_requests(&format!(
            "The disruption budget {pdb_name} is still being processed by the server."
        )));
    }
    let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
    if allowed < 0 {
        return Err(ApiError::forbidden(format!(
            "poddisruptionbudgets.policy {pdb_name:?} is forbidden: pdb disruptions allowed is negative"
        )));
    }
    if allowed == 0 {
        return Err(too_many_requests(&format!(
            "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
            status["desiredHealthy"].as_i64().unwrap_or(0),
            status["currentHealthy"].as_i64().unwrap_or(0)
        )));
    }
    Ok(Some(pdb.clone()))
}

/// Counts the eviction against the budget (the disruption controller confirms it later), so
/// that concurrent evictions cannot together exceed it.
async fn take_disruption(rest: &Rest, pdb: &Value, pod: &str) -> Result<(), ApiError> {
    let def = resources::find("policy", "v1", "poddisruptionbudgets").expect("built in");
    let req = ResourceRequest {
        group: "policy".into(),
        version: "v1".into(),
        resource: "poddisruptionbudgets".into(),
        namespace: objects::namespace(pdb).map(str::to_owned),
        name: objects::name(pdb).map(str::to_owned),
        subresource: Some("status".into()),
        verb: Verb::Update,
    };
    let expected = objects::resource_version(pdb)?;
    rest.guaranteed_update(def, &req, expected, false, &Ownership::Computed, |current| {
        let mut updated = current.clone();
        if !updated["status"].is_object() {
            updated["status"] = json!({});
        }
        let allowed = current["status"]["disruptionsAllowed"].as_i64().unwrap_or(0);
        updated["status"]["disruptionsAllowed"] = (allowed - 1).max(0).into();
        if !updated["status"]["disruptedPods"].is_object() {
            updated["status"]["disruptedPods"] = json!({});
        }
        updated["status"]["disruptedPods"][pod] = now_rfc3339().into();
        Ok(updated)
    })
    .await
    .map_err(|e| {
        if e.code == 409 {
            too_many_requests("The disruption budget changed while the eviction was checked; try again.")
        } else {
            e
        }
    })?;
    Ok(())
}

/// 429 as upstream's eviction answers it, with a `DisruptionBudget` cause.
fn too_many_requests(cause: &str) -> ApiError {
    ApiError {
        code: 429,
        reason: "TooManyRequests",
        message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        details: Some(Box::new(Details {
            causes: vec![Cause::new("DisruptionBudget", "", cause)],
            retry_after_seconds: None,
            ..Details::default()
        })),
    }
}
