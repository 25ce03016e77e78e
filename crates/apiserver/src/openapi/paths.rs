//! The OpenAPI v2 `paths` of the served resources: one operation per verb, named, tagged and
//! annotated (`x-kubernetes-action`, `x-kubernetes-group-version-kind`) as kube-apiserver does.
//! kubectl reads the PATCH operations to learn that the server validates fields itself
//! (`fieldValidation`), and client generators read the rest.

use apimachinery::resources::ResourceDef;
use serde_json::{Map, Value, json};

use super::definitions::reference;

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
const PRODUCES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
const WATCH_PRODUCES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];
const PATCH_CONSUMES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];
/// Custom resources take no strategic merge patch (kubectl reads this to choose its patch type).
const CUSTOM_PATCH_CONSUMES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

/// One resource (or subresource) and what its operations return.
struct Target<'a> {
    def: &'a ResourceDef,
    /// `group_version` as operation ids spell it: `CoreV1`, `RbacAuthorizationV1`.
    id_prefix: String,
    tag: String,
    gvk: Value,
    /// A custom resource (no strategic merge patch).
    custom: bool,
}

/// Adds the paths of `def` (whose kind's definition is `kind_def`) to `paths`.
pub fn add(paths: &mut Map<String, Value>, def: &ResourceDef, kind_def: &str, custom: bool) {
    let tag = tag(def.group, def.version);
    let target = Target {
        def,
        id_prefix: tag.split('_').map(upper_first).collect(),
        gvk: json!({"group": def.group, "version": def.version, "kind": def.kind}),
        tag,
        custom,
    };
    let root = if def.group.is_empty() {
        format!("/api/{}", def.version)
    } else {
        format!("/apis/{}/{}", def.group, def.version)
    };
    let (ns_path, ns_id) = if def.namespaced {
        ("/namespaces/{namespace}", "Namespaced")
    } else {
        ("", "")
    };
    let (kind, plural) = (def.kind, def.plural);
    let item = kind_def.to_owned();
    let list = format!("{kind_def}List");
    let status = format!("{META}.Status");
    let (patch, delete_options) = (format!("{META}.Patch"), format!("{META}.DeleteOptions"));
    let event = format!("{META}.WatchEvent");
    let collection = format!("{root}{ns_path}/{plural}");
    let object = format!("{collection}/{{name}}");
    let (watch_root, all) = (format!("{root}/watch"), format!("{root}/{plural}"));
    let has = |verb: &str| def.has_verb(verb);

    // One row per operation: the path, whether it names an object, the path's scope, the HTTP
    // method, upstream's action, the operation id's verb and noun, the request body's and the
    // response's definitions, and further success codes.
    let mut rows: Vec<Row> = Vec::new();
    let mut row =
        |path: &str, named, namespaced, method, action, id: String, body: &str, returns: &str, also| {
            rows.push(Row {
                path: path.to_owned(),
                named,
                namespaced,
                method,
                action,
                id,
                body: body.to_owned(),
                returns: returns.to_owned(),
                also,
            });
        };
    let ns = def.namespaced;
    if def.storage.is_empty() {
        // A review: create only, answered rather than stored.
        row(
            &collection,
            false,
            ns,
            "post",
            "create",
            format!("create{ns_id}{kind}"),
            &item,
            &item,
            &[201, 202],
        );
    }
    if !def.storage.is_empty() && has("list") {
        row(
            &collection,
            false,
            ns,
            "get",
            "list",
            format!("list{ns_id}{kind}"),
            "",
            &list,
            &[],
        );
        if ns {
            row(
                &all,
                false,
                false,
                "get",
                "list",
                format!("list{kind}ForAllNamespaces"),
                "",
                &list,
                &[],
            );
        }
    }
    if !def.storage.is_empty() && has("create") {
        row(
            &collection,
            false,
            ns,
            "post",
            "create",
            format!("create{ns_id}{kind}"),
            &item,
            &item,
            &[201, 202],
        );
    }
    if has("deletecollection") {
        let id = format!("deleteCollection{ns_id}{kind}");
        row(
            &collection,
            false,
            ns,
            "delete",
            "deletecollection",
            id,
            &delete_options,
            &status,
            &[],
        );
    }
    if has("get") {
        row(
            &object,
            true,
            ns,
            "get",
            "get",
            format!("read{ns_id}{kind}"),
            "",
            &item,
            &[],
        );
    }
    if has("update") {
        row(
            &object,
            true,
            ns,
            "put",
            "put",
            format!("replace{ns_id}{kind}"),
            &item,
            &item,
            &[201],
        );
    }
    if has("patch") {
        row(
            &object,
            true,
            ns,
            "patch",
            "patch",
            format!("patch{ns_id}{kind}"),
            &patch,
            &item,
            &[201],
        );
    }
    if has("delete") {
        row(
            &object,
            true,
            ns,
            "delete",
            "delete",
            format!("delete{ns_id}{kind}"),
            &delete_options,
            &item,
            &[202],
        );
    }
    if has("watch") {
        let path = format!("{watch_root}{ns_path}/{plural}");
        row(
            &path,
            false,
            ns,
            "get",
            "watchlist",
            format!("watch{ns_id}{kind}List"),
            "",
            &event,
            &[],
        );
        let path = format!("{watch_root}{ns_path}/{plural}/{{name}}");
        row(
            &path,
            true,
            ns,
            "get",
            "watch",
            format!("watch{ns_id}{kind}"),
            "",
            &event,
            &[],
        );
        if ns {
            let path = format!("{watch_root}/{plural}");
            row(
                &path,
                false,
                false,
                "get",
                "watchlist",
                format!("watch{kind}ListForAllNamespaces"),
                "",
                &event,
                &[],
            );
        }
    }
    for sub in def.subresources {
        let path = format!("{object}/{sub}");
        let noun = format!("{ns_id}{kind}{}", upper_first(sub));
        let read_write = match *sub {
            "status" | "ephemeralcontainers" | "resize" => Some(item.as_str()),
            "scale" => Some("io.k8s.api.autoscaling.v1.Scale"),
            _ => None,
        };
        if let Some(body) = read_write {
            row(
                &path,
                true,
                ns,
                "get",
                "get",
                format!("read{noun}"),
                "",
                body,
                &[],
            );
            row(
                &path,
                true,
                ns,
                "put",
                "put",
                format!("replace{noun}"),
                body,
                body,
                &[201],
            );
            row(
                &path,
                true,
                ns,
                "patch",
                "patch",
                format!("patch{noun}"),
                &patch,
                body,
                &[201],
            );
        }
        let created = match *sub {
            "binding" => Some("io.k8s.api.core.v1.Binding"),
            "eviction" => Some("io.k8s.api.policy.v1.Eviction"),
            "token" => Some("io.k8s.api.authentication.v1.TokenRequest"),
            _ => None,
        };
        if let Some(body) = created {
            row(
                &path,
                true,
                ns,
                "post",
                "create",
                format!("create{noun}"),
                body,
                body,
                &[201, 202],
            );
        }
        if *sub == "finalize" {
            row(
                &path,
                true,
                ns,
                "put",
                "put",
                format!("replace{noun}"),
                &item,
                &item,
                &[201],
            );
        }
        // Streaming and proxy subresources (log, exec, attach, portforward, proxy) are not
        // described: their bodies are not API objects.
    }
    for r in rows {
        let op = target.op(r.method, r.action, &r.id, &r.body, &r.returns, r.also);
        insert(paths, &r.path, r.method, op, r.namespaced, r.named);
    }
}

/// One operation to describe (see `add`).
struct Row {
    path: String,
    named: bool,
    namespaced: bool,
    method: &'static str,
    action: &'static str,
    id: String,
    body: String,
    returns: String,
    also: &'static [u16],
}

impl Target<'_> {
    /// One operation. `body` is the definition of the request body ("" for none), `returns` the
    /// 200 response's; `also` lists further success codes returning the same.
    fn op(&self, method: &str, action: &str, id: &str, body: &str, returns: &str, also: &[u16]) -> Value {
        let kind = self.def.kind;
        let description = match action {
            "list" => format!("list or watch objects of kind {kind}"),
            "create" => format!("create a {kind}"),
            "deletecollection" => format!("delete collection of {kind}"),
            "get" => format!("read the specified {kind}"),
            "put" => format!("replace the specified {kind}"),
            "patch" => format!("partially update the specified {kind}"),
            "delete" => format!("delete a {kind}"),
            "watch" => format!(
                "watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."
            ),
            _ => format!(
                "watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."
            ),
        };
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({"description": "OK", "schema": reference(returns)}),
        );
        for code in also {
            let text = if *code == 201 { "Created" } else { "Accepted" };
            responses.insert(
                code.to_string(),
                json!({"description": text, "schema": reference(returns)}),
            );
        }
        responses.insert("401".into(), json!({"description": "Unauthorized"}));
        let mut parameters = Vec::new();
        if !body.is_empty() {
            parameters.push(json!({
                "in": "body", "name": "body", "required": method != "delete", "schema": reference(body),
            }));
        }
        parameters.extend(query_parameters(action));
        let produces = if action.starts_with("watch") || action == "list" {
            WATCH_PRODUCES
        } else {
            PRODUCES
        };
        let consumes: &[&str] = if method == "patch" && self.custom {
            CUSTOM_PATCH_CONSUMES
        } else if method == "patch" {
            PATCH_CONSUMES
        } else {
            &["*/*"]
        };
        let mut op = json!({
            "description": description,
            "operationId": lower_verb(id, &self.id_prefix),
            "consumes": consumes,
            "produces": produces,
            "schemes": ["https"],
            "tags": [self.tag],
            "responses": responses,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": self.gvk,
        });
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
        op
    }
}

/// `list` + `CoreV1` + `NamespacedPod` → `listCoreV1NamespacedPod`: the group-version goes
/// after the verb.
fn lower_verb(id: &str, id_prefix: &str) -> String {
    let split = id.find(|c: char| c.is_ascii_uppercase()).unwrap_or(id.len());
    format!("{}{id_prefix}{}", &id[..split], &id[split..])
}

fn query(name: &str, kind: &str, description: &str) -> Value {
    json!({"in": "query", "name": name, "type": kind, "uniqueItems": true, "description": description})
}

fn query_parameters(action: &str) -> Vec<Value> {
    let dry_run = query(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
    );
    let field_manager = query(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes.",
    );
    let field_validation = query(
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict.",
    );
    match action {
        "create" | "put" => vec![dry_run, field_manager, field_validation],
        "patch" => vec![
            dry_run,
            field_manager,
            field_validation,
            query(
                "force",
                "boolean",
                "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
            ),
        ],
        "delete" | "deletecollection" => {
            let mut params = vec![
                dry_run,
                query(
                    "gracePeriodSeconds",
                    "integer",
                    "The duration in seconds before the object should be deleted.",
                ),
                query(
                    "orphanDependents",
                    "boolean",
                    "Deprecated: please use the PropagationPolicy.",
                ),
                query(
                    "propagationPolicy",
                    "string",
                    "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
                ),
            ];
            if action == "deletecollection" {
                params.extend(list_parameters());
            }
            params
        }
        "list" | "watch" | "watchlist" => list_parameters(),
        _ => Vec::new(),
    }
}

fn list_parameters() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
        ),
        query(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server.",
        ),
        query(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        ),
        query(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        query(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call.",
        ),
        query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true`.",
        ),
        query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
        query(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

/// Adds one operation, with the path-level parameters (name, namespace, pretty) upstream puts
/// on every path.
fn insert(
    paths: &mut Map<String, Value>,
    path: &str,
    method: &str,
    op: Value,
    namespaced: bool,
    named: bool,
) {
    let entry = paths.entry(path.to_owned()).or_insert_with(|| {
        let mut params = Vec::new();
        if named {
            params.push(json!({"in": "path", "name": "name", "required": true, "type": "string", "uniqueItems": true, "description": "name of the object"}));
        }
        if namespaced {
            params.push(json!({"in": "path", "name": "namespace", "required": true, "type": "string", "uniqueItems": true, "description": "object name and auth scope, such as for teams and projects"}));
        }
        params.push(query("pretty", "string", "If 'true', then the output is pretty printed."));
        json!({"parameters": params})
    });
    entry[method] = op;
}

/// Upstream's tag of a group-version: `core_v1`, `apps_v1`, `rbacAuthorization_v1`,
/// `flowcontrolApiserver_v1`.
pub fn tag(group: &str, version: &str) -> String {
    if group.is_empty() {
        return format!("core_{version}");
    }
    let trimmed = group.strip_suffix(".k8s.io").unwrap_or(group);
    let mut out = String::new();
    for (i, part) in trimmed.split('.').enumerate() {
        out.push_str(&if i == 0 {
            part.to_owned()
        } else {
            upper_first(part)
        });
    }
    format!("{out}_{version}")
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_and_tags_are_upstreams() {
        assert_eq!(tag("rbac.authorization.k8s.io", "v1"), "rbacAuthorization_v1");
        assert_eq!(tag("", "v1"), "core_v1");
        let def = apimachinery::resources::find("", "v1", "configmaps").unwrap();
        let mut paths = Map::new();
        add(&mut paths, def, "io.k8s.api.core.v1.ConfigMap", false);
        let op = &paths["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(op["operationId"], "patchCoreV1NamespacedConfigMap");
        assert_eq!(op["x-kubernetes-action"], "patch");
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "ConfigMap");
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert_eq!(
            paths["/api/v1/configmaps"]["get"]["operationId"],
            "listCoreV1ConfigMapForAllNamespaces"
        );
        assert_eq!(
            paths["/api/v1/watch/namespaces/{namespace}/configmaps"]["get"]["operationId"],
            "watchCoreV1NamespacedConfigMapList"
        );
        let def = apimachinery::resources::find("apps", "v1", "deployments").unwrap();
        add(&mut paths, def, "io.k8s.api.apps.v1.Deployment", false);
        assert_eq!(
            paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["get"]["operationId"],
            "readAppsV1NamespacedDeploymentScale"
        );
    }
}
