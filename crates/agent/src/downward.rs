//! The downward API's values, shared by env vars ([`crate::env`]) and downwardAPI volumes
//! ([`crate::volumes`]): upstream's `fieldpath.ExtractFieldPathAsString` (plus the fields the
//! kubelet fills in itself: node name, host and pod IPs) and `resource.ExtractContainerResourceValue`
//! (limits fall back to the node's allocatable, as the kubelet merges them).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};

/// What the kubelet knows about its node that the downward API exposes.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    pub node_name: String,
    /// The node's InternalIPs (`status.hostIP` is the first).
    pub host_ips: Vec<String>,
    /// The node's allocatable resources (`cpu`, `memory`, `ephemeral-storage` → quantities):
    /// what `limits.*` read when a container sets no limit.
    pub allocatable: BTreeMap<String, String>,
}

pub use apimachinery::gostr::go_quote;

/// upstream's `fieldpath.FormatMap`: `key="value"` lines, sorted, no trailing newline.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `metadata.labels['key']` → `("metadata.labels", "key")`.
fn subscript(path: &str) -> Option<(&str, &str)> {
    let (base, rest) = path.split_once("['")?;
    Some((base, rest.strip_suffix("']")?))
}

/// The value of a metadata field path (what downwardAPI volumes may use).
pub fn metadata_value(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    if let Some((base, key)) = subscript(path) {
        let map = match base {
            "metadata.labels" => meta.labels.as_ref(),
            "metadata.annotations" => meta.annotations.as_ref(),
            _ => return Err(format!("unsupported fieldPath: {path}")),
        };
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        _ => return Err(format!("unsupported fieldPath: {path}")),
    })
}

/// The value of any field path env vars may use: metadata plus the spec and status fields the
/// kubelet knows (`spec.nodeName`, `status.hostIP(s)`, `status.podIP(s)` …).
pub fn field_value(pod: &Pod, path: &str, node: &NodeFacts, pod_ips: &[String]) -> Result<String, String> {
    let spec = pod.spec.as_ref();
    Ok(match path {
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| node.node_name.clone()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => node.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => node.host_ips.join(","),
        "status.podIP" => pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => pod_ips.join(","),
        _ => return metadata_value(pod, path),
    })
}

/// A resource reference resolved against a container: upstream's
/// `ExtractContainerResourceValue`, with unset limits read as the node's allocatable.
pub fn resource_value(
    container: &Container,
    selector: &ResourceFieldSelector,
    node: &NodeFacts,
) -> Result<String, String> {
    let resources = container.resources.as_ref();
    let (kind, name) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource : {}", selector.resource))?;
    let get = |map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
        map.and_then(|m| m.get(name)).map(|q| q.0.clone())
    };
    let value = match kind {
        "limits" => get(resources.and_then(|r| r.limits.as_ref()))
            .or_else(|| node.allocatable.get(name).cloned())
            .unwrap_or_else(|| "0".into()),
        "requests" => get(resources.and_then(|r| r.requests.as_ref())).unwrap_or_else(|| "0".into()),
        _ => return Err(format!("unsupported container resource : {}", selector.resource)),
    };
    let divisor = selector.divisor.as_ref().map_or("1", |d| d.0.as_str());
    let parse = |q: &str| apimachinery::quantity::parse(q).ok_or_else(|| format!("invalid quantity {q:?}"));
    let (value, divisor) = (parse(&value)?, parse(divisor)?);
    match name {
        // cpu: ceil(milliValue / divisor's milliValue), at least 1 when a value is set (as upstream's
        // convertResourceCPUToString rounds up).
        "cpu" => {
            let milli = (value * 1000.0).ceil();
            let div = (divisor * 1000.0).ceil().max(1.0);
            Ok(format!("{}", (milli / div).ceil() as i64))
        }
        "memory" | "ephemeral-storage" => Ok(format!(
            "{}",
            (value.ceil() / divisor.ceil().max(1.0)).ceil() as i64
        )),
        n if n.starts_with("hugepages-") => Ok(format!(
            "{}",
            (value.ceil() / divisor.ceil().max(1.0)).ceil() as i64
        )),
        _ => Err(format!("unsupported container resource : {}", selector.resource)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1",
                "labels": {"b": "two", "a": "o\"ne\n"}, "annotations": {"x": "é"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "sa", "containers": [{"name": "c"}]},
        }))
        .unwrap()
    }

    #[test]
    fn labels_and_annotations_are_go_quoted_and_sorted() {
        let pod = pod();
        assert_eq!(
            metadata_value(&pod, "metadata.labels").unwrap(),
            "a=\"o\\\"ne\\n\"\nb=\"two\""
        );
        assert_eq!(metadata_value(&pod, "metadata.annotations").unwrap(), "x=\"é\"");
        assert_eq!(metadata_value(&pod, "metadata.labels['b']").unwrap(), "two");
        assert_eq!(metadata_value(&pod, "metadata.labels['zz']").unwrap(), "");
        assert_eq!(metadata_value(&pod, "metadata.uid").unwrap(), "u-1");
        assert!(metadata_value(&pod, "spec.nodeName").is_err());
        assert_eq!(go_quote("\u{1}\t"), "\"\\x01\\t\"");
    }

    #[test]
    fn env_only_fields() {
        let pod = pod();
        let node = NodeFacts {
            node_name: "n1".into(),
            host_ips: vec!["10.0.0.1".into(), "fd00::1".into()],
            ..NodeFacts::default()
        };
        let ips = ["10.42.0.5".to_owned()];
        assert_eq!(field_value(&pod, "spec.nodeName", &node, &ips).unwrap(), "n1");
        assert_eq!(
            field_value(&pod, "status.hostIPs", &node, &ips).unwrap(),
            "10.0.0.1,fd00::1"
        );
        assert_eq!(
            field_value(&pod, "status.podIP", &node, &ips).unwrap(),
            "10.42.0.5"
        );
        assert_eq!(
            field_value(&pod, "spec.serviceAccountName", &node, &ips).unwrap(),
            "sa"
        );
    }

    #[test]
    fn resources_round_up_by_divisor_and_default_to_allocatable() {
        let mut container = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([("memory".into(), Quantity("64Mi".into()))])),
                requests: Some(BTreeMap::from([("cpu".into(), Quantity("250m".into()))])),
                ..ResourceRequirements::default()
            }),
            ..Container::default()
        };
        let node = NodeFacts {
            allocatable: BTreeMap::from([("cpu".into(), "4".into())]),
            ..NodeFacts::default()
        };
        let sel = |r: &str, d: Option<&str>| ResourceFieldSelector {
            resource: r.into(),
            divisor: d.map(|d| Quantity(d.into())),
            container_name: None,
        };
        let value = |s| resource_value(&container, &s, &node).unwrap();
        assert_eq!(value(sel("requests.cpu", None)), "1");
        assert_eq!(value(sel("requests.cpu", Some("1m"))), "250");
        assert_eq!(value(sel("limits.memory", None)), "67108864");
        assert_eq!(value(sel("limits.memory", Some("1Mi"))), "64");
        assert_eq!(value(sel("limits.cpu", None)), "4");
        assert_eq!(value(sel("requests.memory", None)), "0");
        container.resources = None;
        assert!(resource_value(&container, &sel("bogus", None), &node).is_err());
    }
}
