//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/<group>` and the resource lists of
//! each group-version, as kube-apiserver 1.33 serves them (legacy, unaggregated form; clients
//! that ask for aggregated discovery fall back to it).

use apimachinery::resources::ResourceDef;
use serde_json::{Value, json};

/// The Kubernetes version rkube speaks.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";

pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+rkube-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

/// The served resources (built-in then custom), as every discovery document reads them.
pub type Defs<'a> = &'a [&'static ResourceDef];

/// The group-versions served, in discovery order (preferred version first within a group).
fn group_versions(defs: Defs) -> Vec<(&'static str, &'static str)> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for r in defs {
        if !seen.contains(&(r.group, r.version)) {
            seen.push((r.group, r.version));
        }
    }
    seen
}

fn group_json(defs: Defs, group: &str) -> Value {
    let versions: Vec<Value> = group_versions(defs)
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
}

pub fn groups(defs: Defs) -> Value {
    let mut names: Vec<&str> = Vec::new();
    for (g, _) in group_versions(defs) {
        if !g.is_empty() && !names.contains(&g) {
            names.push(g);
        }
    }
    let groups: Vec<Value> = names.into_iter().map(|g| group_json(defs, g)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(defs: Defs, group: &str) -> Option<Value> {
    group_versions(defs)
        .iter()
        .any(|(g, _)| *g == group && !g.is_empty())
        .then(|| {
            let mut doc = group_json(defs, group);
            doc["kind"] = "APIGroup".into();
            doc["apiVersion"] = "v1".into();
            doc
        })
}

/// The `APIResourceList` of one group-version, or None when it is not served.
pub fn resource_list(defs: Defs, group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = defs
        .iter()
        .copied()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if defs.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for def in defs {
        let mut entry = json!({
            "name": def.plural,
            "singularName": def.singular,
            "namespaced": def.namespaced,
            "kind": def.kind,
            "verbs": def.verbs,
        });
        if !def.short_names.is_empty() {
            entry["shortNames"] = json!(def.short_names);
        }
        if !def.categories.is_empty() {
            entry["categories"] = json!(def.categories);
        }
        list.push(entry);
        for sub in def.subresources {
            let (group, version, kind, verbs) = subresource(def, sub);
            let mut entry = json!({
                "name": format!("{}/{sub}", def.plural),
                "singularName": "",
                "namespaced": def.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if !group.is_empty() {
                entry["group"] = group.into();
                entry["version"] = version.into();
            }
            list.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list}),
    )
}

/// Group, version, kind and verbs of a subresource, as upstream lists them.
fn subresource(
    def: &ResourceDef,
    sub: &str,
) -> (&'static str, &'static str, &'static str, &'static [&'static str]) {
    const GPU: &[&str] = &["get", "patch", "update"];
    const CREATE: &[&str] = &["create"];
    const CREATE_GET: &[&str] = &["create", "get"];
    const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];
    match sub {
        "status" | "ephemeralcontainers" | "resize" => ("", "", def.kind, GPU),
        "scale" => ("autoscaling", "v1", "Scale", GPU),
        "binding" => ("", "", "Binding", CREATE),
        "eviction" => ("policy", "v1", "Eviction", CREATE),
        "log" => ("", "", "Pod", &["get"]),
        "exec" => ("", "", "PodExecOptions", CREATE_GET),
        "attach" => ("", "", "PodAttachOptions", CREATE_GET),
        "portforward" => ("", "", "PodPortForwardOptions", CREATE_GET),
        "proxy" => match def.plural {
            "nodes" => ("", "", "NodeProxyOptions", PROXY),
            "services" => ("", "", "ServiceProxyOptions", PROXY),
            _ => ("", "", "PodProxyOptions", PROXY),
        },
        "token" => ("authentication.k8s.io", "v1", "TokenRequest", CREATE),
        "finalize" => ("", "", "Namespace", &["update"]),
        _ => ("", "", def.kind, GPU),
    }
}

/// The media type of aggregated discovery (apidiscovery.k8s.io), if the client asked for it.
/// kubectl 1.33 asks for v2, then v2beta1, then plain JSON.
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        if !params.contains(&"g=apidiscovery.k8s.io") || !params.contains(&"as=APIGroupDiscoveryList") {
            continue;
        }
        if params.contains(&"v=v2") {
            return Some("v2");
        }
        if params.contains(&"v=v2beta1") {
            return Some("v2beta1");
        }
    }
    None
}

/// The Content-Type of an aggregated discovery response.
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// Aggregated discovery: every group (`/apis`) or the core group (`/api`) with all versions and
/// resources in one document, so a client needs two requests instead of one per group-version.
pub fn aggregated(defs: Defs, core: bool, version: &str) -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in group_versions(defs) {
        if g.is_empty() == core && !groups.contains(&g) {
            groups.push(g);
        }
    }
    let items: Vec<Value> = groups
        .into_iter()
        .map(|group| {
            let versions: Vec<Value> = group_versions(defs)
                .into_iter()
                .filter(|(g, _)| *g == group)
                .map(|(g, v)| {
                    let resources: Vec<Value> = defs
                        .iter()
                        .filter(|r| r.group == g && r.version == v)
                        .map(|r| aggregated_resource(r))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(def: &ResourceDef) -> Value {
    let kind =
        |group: &str, version: &str, kind: &str| json!({"group": group, "version": version, "kind": kind});
    let mut entry = json!({
        "resource": def.plural,
        "responseKind": kind(def.group, def.version, def.kind),
        "scope": if def.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": def.singular,
        "verbs": def.verbs,
    });
    if !def.short_names.is_empty() {
        entry["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        entry["categories"] = json!(def.categories);
    }
    let subresources: Vec<Value> = def
        .subresources
        .iter()
        .map(|sub| {
            let (group, version, sub_kind, verbs) = subresource(def, sub);
            let (group, version) = if group.is_empty() {
                (def.group, def.version)
            } else {
                (group, version)
            };
            json!({"subresource": sub, "responseKind": kind(group, version, sub_kind), "verbs": verbs})
        })
        .collect();
    if !subresources.is_empty() {
        entry["subresources"] = Value::Array(subresources);
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Vec<&'static ResourceDef> {
        apimachinery::resources::BUILTIN.iter().collect()
    }

    #[test]
    fn resource_lists_name_subresources() {
        let core = resource_list(&builtin(), "", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods") && names.contains(&"pods/status") && names.contains(&"pods/log"));
        let pods = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        let apps = resource_list(&builtin(), "apps", "v1").unwrap();
        let scale = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(
            (scale["kind"].as_str(), scale["group"].as_str()),
            (Some("Scale"), Some("autoscaling"))
        );
        assert!(resource_list(&builtin(), "apps", "v2").is_none());
    }

    #[test]
    fn aggregated_discovery_lists_everything_at_once() {
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(accept), Some("v2"));
        assert_eq!(aggregated_version("application/json"), None);
        let core = aggregated(&builtin(), true, "v2");
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        let apis = aggregated(&builtin(), false, "v2");
        let apps = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        let deployments = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deployments["scope"], "Namespaced");
        assert_eq!(deployments["subresources"][0]["responseKind"]["kind"], "Scale");
        let autoscaling = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "autoscaling")
            .unwrap();
        assert_eq!(
            autoscaling["versions"][0]["version"], "v2",
            "preferred version first"
        );
    }

    #[test]
    fn groups_prefer_their_first_version() {
        let groups = groups(&builtin());
        let autoscaling = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "autoscaling")
            .unwrap();
        assert_eq!(autoscaling["preferredVersion"]["version"], "v2");
        assert!(group(&builtin(), "").is_none());
        assert_eq!(group(&builtin(), "apps").unwrap()["kind"], "APIGroup");
    }
}
