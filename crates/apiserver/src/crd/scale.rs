//! The scale subresource of custom resources: an `autoscaling/v1` Scale read from and written
//! to the paths the CRD names (`specReplicasPath`, `statusReplicasPath`, `labelSelectorPath`),
//! as upstream's `ScaleREST` for custom resources.

use apimachinery::resources::ResourceDef;
use apimachinery::status::{ApiError, Cause};
use serde_json::{Value, json};

use super::CustomVersion;
use crate::objects;
use crate::query::Query;
use crate::request::{ResourceRequest, Verb};
use crate::rest::Rest;

/// Where a custom resource keeps its replicas and selector (simple JSON paths).
#[derive(Clone, Debug)]
pub struct ScalePaths {
    spec_replicas: Vec<String>,
    status_replicas: Vec<String>,
    label_selector: Option<Vec<String>>,
}

fn split(path: &str) -> Vec<String> {
    path.trim_start_matches('.')
        .split('.')
        .map(str::to_owned)
        .collect()
}

impl ScalePaths {
    pub fn from_spec(scale: &Value) -> Option<ScalePaths> {
        Some(ScalePaths {
            spec_replicas: split(scale["specReplicasPath"].as_str()?),
            status_replicas: split(scale["statusReplicasPath"].as_str()?),
            label_selector: scale["labelSelectorPath"]
                .as_str()
                .filter(|p| !p.is_empty())
                .map(split),
        })
    }
}

fn get_path<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| v.get(k))
}

fn set_path(obj: &mut Value, path: &[String], value: Value) {
    let mut node = obj;
    for k in &path[..path.len() - 1] {
        if !node[k.as_str()].is_object() {
            node[k.as_str()] = json!({});
        }
        node = &mut node[k.as_str()];
    }
    node[path[path.len() - 1].as_str()] = value;
}

/// The Scale of a custom resource.
fn to_scale(paths: &ScalePaths, obj: &Value) -> Value {
    let int = |p: &[String]| get_path(obj, p).and_then(Value::as_i64).unwrap_or(0);
    let selector = paths
        .label_selector
        .as_ref()
        .and_then(|p| get_path(obj, p))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let meta = &obj["metadata"];
    let mut metadata = json!({
        "name": meta["name"], "uid": meta["uid"],
        "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
    });
    if meta["namespace"].is_string() {
        metadata["namespace"] = meta["namespace"].clone();
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": int(&paths.spec_replicas)},
        "status": {"replicas": int(&paths.status_replicas), "selector": selector},
    })
}

/// GET, PUT or PATCH of `<resource>/scale`.
pub async fn handle(
    rest: &Rest,
    def: &ResourceDef,
    custom: &CustomVersion,
    req: &ResourceRequest,
    query: &Query,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let Some(paths) = custom.scale.clone() else {
        return Err(ApiError::path_not_found());
    };
    let name = req.name.as_deref().unwrap_or_default().to_owned();
    let mut main = req.clone();
    main.subresource = None;
    if req.verb == Verb::Get {
        return Ok(to_scale(&paths, &rest.get(def, &main).await?));
    }
    // The new Scale: the body (PUT) or the current Scale patched (PATCH).
    let update: Value = match req.verb {
        Verb::Update => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding the request body as JSON: {e}")))?,
        Verb::Patch => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json!({"__patch": patch, "__type": content_type})
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    let expected = match req.verb {
        Verb::Update => objects::resource_version(&update)?,
        _ => None,
    };
    let scale_paths = paths.clone();
    let ownership = crate::apply::Ownership::track(def, req, query)?;
    let updated = rest
        .guaranteed_update(
            def,
            &main,
            expected,
            query.dry_run()?,
            &ownership,
            move |current| {
                let mut scale = to_scale(&paths, current);
                let wanted = if let Some(patch) = update.get("__patch") {
                    match update["__type"]
                        .as_str()
                        .unwrap_or_default()
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                    {
                        "application/json-patch+json" => {
                            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                            json_patch::patch(&mut scale, &ops)
                                .map_err(|e| ApiError::bad_request(e.to_string()))?;
                        }
                        _ => json_patch::merge(&mut scale, patch),
                    }
                    scale
                } else {
                    update.clone()
                };
                let replicas = match &wanted["spec"]["replicas"] {
                    Value::Null => 0,
                    v => v.as_i64().ok_or_else(|| {
                        ApiError::bad_request(format!("spec.replicas: {v} is not an integer"))
                    })?,
                };
                if replicas < 0 {
                    return Err(ApiError::invalid(
                        "autoscaling",
                        "Scale",
                        &name,
                        vec![Cause::invalid(
                            "spec.replicas",
                            &Value::from(replicas),
                            "must be greater than or equal to 0",
                        )],
                    ));
                }
                let mut obj = current.clone();
                set_path(&mut obj, &paths.spec_replicas, replicas.into());
                Ok(obj)
            },
        )
        .await?;
    Ok(to_scale(&scale_paths, &updated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_reads_the_declared_paths() {
        let paths = ScalePaths::from_spec(&json!({
            "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector"
        }))
        .unwrap();
        let obj = json!({"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "5"},
            "spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "app=a"}});
        let scale = to_scale(&paths, &obj);
        assert_eq!(scale["spec"]["replicas"], 3);
        assert_eq!(scale["status"], json!({"replicas": 2, "selector": "app=a"}));
        assert_eq!(scale["metadata"]["namespace"], "ns");
        let mut empty = json!({});
        set_path(&mut empty, &paths.spec_replicas, 4.into());
        assert_eq!(empty, json!({"spec": {"replicas": 4}}));
    }
}
