//! `/openapi/v2` and `/openapi/v3`: the API's schema as kube-apiserver publishes it, so that
//! `kubectl explain`, `kubectl apply` (patch strategies from the schema) and kubectl's
//! server-side field validation (it looks for the `fieldValidation` parameter on PATCH
//! operations) work.
//!
//! - `definitions`: the type schemas (generated from k8s-openapi; completed with GVKs, List
//!   kinds and patch metadata);
//! - `paths`: the operations of each served resource;
//! - `v3`: per group-version v3 documents converted from those.
//!
//! The documents are built on first request (tens of milliseconds) and kept serialized: an idle
//! server never pays their memory.

mod definitions;
mod paths;
mod protobuf;
mod v3;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use apimachinery::resources::{self, ResourceDef};
use bytes::Bytes;
use serde_json::{Map, Value, json};

/// One group-version's v3 document, serialized, with the hash clients cache it under.
pub struct V3Document {
    pub hash: String,
    pub json: Bytes,
}

/// The documents, built once from the served resources.
pub struct Documents {
    pub v2: Bytes,
    /// The v2 document as gnostic's protobuf (what client-go asks for).
    pub v2_protobuf: Bytes,
    /// Keyed by path below `/openapi/v3/`: `api/v1`, `apis/apps/v1`.
    pub v3: BTreeMap<String, V3Document>,
}

/// The lazily built documents, shared by all requests.
#[derive(Default)]
pub struct OpenApi {
    built: Mutex<Option<Arc<Documents>>>,
}

impl OpenApi {
    pub fn documents(&self) -> Arc<Documents> {
        let mut built = self.built.lock().expect("openapi lock");
        built
            .get_or_insert_with(|| {
                let served: Vec<&ResourceDef> = resources::BUILTIN.iter().collect();
                Arc::new(build(&served))
            })
            .clone()
    }

    /// Drops the documents: the next request rebuilds them (after the served set changed).
    pub fn invalidate(&self) {
        *self.built.lock().expect("openapi lock") = None;
    }

    /// `/openapi/v3`: where each group-version's document is, with its hash.
    pub fn v3_root(&self) -> Value {
        let docs = self.documents();
        let paths: Map<String, Value> = docs
            .v3
            .iter()
            .map(|(path, doc)| {
                let url = format!("/openapi/v3/{path}?hash={}", doc.hash);
                (path.clone(), json!({"serverRelativeURL": url}))
            })
            .collect();
        json!({"paths": paths})
    }
}

fn build(served: &[&ResourceDef]) -> Documents {
    let defs = definitions::build(served);
    let by_message = defs
        .keys()
        .map(|name| (definitions::message_of(name).to_ascii_lowercase(), name.clone()))
        .collect();
    let mut all_paths = Map::new();
    let mut prefixes = Vec::new();
    for def in served {
        let Some(kind_def) = definitions::definition_of(def, &by_message) else {
            continue;
        };
        paths::add(&mut all_paths, def, &kind_def);
        let prefix = if def.group.is_empty() {
            format!("api/{}", def.version)
        } else {
            format!("apis/{}/{}", def.group, def.version)
        };
        if !prefixes.contains(&prefix) {
            prefixes.push(prefix);
        }
    }
    let version = crate::discovery::version()["gitVersion"]
        .as_str()
        .unwrap_or("v1.33.0")
        .to_owned();
    let mut v3 = BTreeMap::new();
    for prefix in prefixes {
        let doc = v3::document(&version, &format!("/{prefix}/"), &all_paths, &defs);
        let json = Bytes::from(serde_json::to_vec(&doc).expect("JSON"));
        v3.insert(
            prefix,
            V3Document {
                hash: hash(&json),
                json,
            },
        );
    }
    let v2 = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": version},
        "paths": all_paths,
        "definitions": defs,
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    });
    Documents {
        v2_protobuf: Bytes::from(protobuf::encode(&v2)),
        v2: Bytes::from(serde_json::to_vec(&v2).expect("JSON")),
        v3,
    }
}

/// Upstream's document hash: SHA-512, upper-case hex.
fn hash(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA512, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_has_a_document_with_its_kinds() {
        let api = OpenApi::default();
        let docs = api.documents();
        let apps: Value = serde_json::from_slice(&docs.v3["apis/apps/v1"].json).unwrap();
        let deployment = &apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        // Containers merge by name, in v3 as in v2.
        let pod_spec = &apps["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"];
        assert_eq!(
            pod_spec["properties"]["containers"]["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert!(
            apps["paths"]
                .as_object()
                .unwrap()
                .keys()
                .all(|p| p.starts_with("/apis/apps/v1/"))
        );
        let root = api.v3_root();
        assert!(
            root["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
        // Every reference in every document resolves within it.
        for (path, doc) in &docs.v3 {
            let text = std::str::from_utf8(&doc.json).unwrap();
            let parsed: Value = serde_json::from_str(text).unwrap();
            for part in text.split("\"#/components/schemas/").skip(1) {
                let name = &part[..part.find('"').unwrap()];
                assert!(
                    parsed["components"]["schemas"].get(name).is_some(),
                    "{path}: dangling {name}"
                );
            }
        }
    }
}

/// Compares the served v2 document with upstream's (`../shared/reference/kubernetes-openapi-v2.json`
/// next to the repository, when present): every served kind, its fields, and the patch strategies,
/// merge keys and list types of the fields both know. The reference may be a newer Kubernetes than
/// our types (it has fields we lack), never an older one.
#[cfg(test)]
mod reference_tests {
    use super::*;

    fn reference() -> Option<Value> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/reference/kubernetes-openapi-v2.json");
        let text = std::fs::read_to_string(&path).ok()?;
        Some(serde_json::from_str(&text).expect("the reference is JSON"))
    }

    #[test]
    fn served_schema_matches_upstreams() {
        let Some(reference) = reference() else {
            eprintln!("upstream's OpenAPI reference is not next to the repository: comparison skipped");
            return;
        };
        let docs = OpenApi::default().documents();
        let ours: Value = serde_json::from_slice(&docs.v2).unwrap();
        let (ours, theirs) = (&ours["definitions"], &reference["definitions"]);
        let mut problems = Vec::new();
        for (name, schema) in ours.as_object().unwrap() {
            let Some(upstream) = theirs.get(name).filter(|_| !name.contains("alpha")) else {
                continue; // alpha types change or go in later releases
            };
            let kinds = |s: &Value| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            };
            for gvk in kinds(schema) {
                if !kinds(upstream).contains(&gvk) {
                    problems.push(format!("{name}: GVK {gvk} not upstream's"));
                }
            }
            let props = schema["properties"].as_object().cloned().unwrap_or_default();
            for (field, prop) in &props {
                let Some(up) = upstream["properties"].get(field) else {
                    problems.push(format!("{name}.{field}: not an upstream field"));
                    continue;
                };
                for ext in [
                    "x-kubernetes-patch-strategy",
                    "x-kubernetes-patch-merge-key",
                    "x-kubernetes-list-type",
                    "x-kubernetes-list-map-keys",
                    "type",
                ] {
                    if prop.get(ext) != up.get(ext) {
                        problems.push(format!(
                            "{name}.{field}: {ext} {:?} vs upstream {:?}",
                            prop.get(ext),
                            up.get(ext)
                        ));
                    }
                }
            }
        }
        // Every served kind is described.
        for def in resources::BUILTIN {
            let gvk = json!({"group": def.group, "version": def.version, "kind": def.kind});
            let described = ours.as_object().unwrap().values().any(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|k| k.contains(&gvk))
            });
            if !described {
                problems.push(format!("served kind {gvk} has no definition"));
            }
        }
        assert!(
            problems.is_empty(),
            "{} differences:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
}
