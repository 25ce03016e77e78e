//! `labelSelector` and `fieldSelector` of list and watch requests, with the field labels
//! upstream supports per kind (others are refused with upstream's "field label not supported").

use apimachinery::fields::FieldSelector;
use apimachinery::resources::ResourceDef;
use apimachinery::selector::LabelSelector;
use apimachinery::status::ApiError;
use serde_json::Value;

use crate::query::Query;

/// Which objects a list or watch returns.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    pub fn from_query(def: &ResourceDef, query: &Query) -> Result<Filter, ApiError> {
        Self::from_query_with(def, query, &[])
    }

    /// Like [`Filter::from_query`], with more selectable fields (a CRD's `selectableFields`).
    pub fn from_query_with(def: &ResourceDef, query: &Query, extra: &[String]) -> Result<Filter, ApiError> {
        let labels = match query.get("labelSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?),
            None => None,
        };
        let fields = match query.get("fieldSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let selector = FieldSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
                for field in selector.requirements().iter().map(|r| r.field.as_str()) {
                    if !supported_fields(def).contains(&field) && !extra.iter().any(|f| f == field) {
                        return Err(ApiError::bad_request(format!(
                            "field label not supported: {field}"
                        )));
                    }
                }
                Some(selector)
            }
            None => None,
        };
        Ok(Filter { labels, fields })
    }

    /// Whether every object matches (no selector given).
    pub fn is_everything(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels_match = self
            .labels
            .as_ref()
            .is_none_or(|s| s.matches_json(obj.get("metadata").and_then(|m| m.get("labels"))));
        labels_match
            && self
                .fields
                .as_ref()
                .is_none_or(|s| s.matches(|field| field_value(obj, field)))
    }
}

/// Field labels a kind supports in field selectors (upstream's per-kind GetAttrs).
fn supported_fields(def: &ResourceDef) -> Vec<&'static str> {
    let mut fields = vec!["metadata.name", "metadata.namespace"];
    fields.extend_from_slice(match (def.group, def.plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ][..],
        ("", "events") | ("events.k8s.io", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ][..],
        ("", "secrets") => &["type"][..],
        ("", "nodes") => &["spec.unschedulable"][..],
        ("", "namespaces") => &["status.phase"][..],
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["status.replicas"][..],
        ("batch", "jobs") => &["status.successful"][..],
        _ => &[][..],
    });
    fields
}

/// A field's value as the string a field selector compares with (absent → None, i.e. "").
fn field_value(obj: &Value, field: &str) -> Option<String> {
    // events' `source` is the source component.
    let path = if field == "source" {
        "source.component"
    } else {
        field
    };
    let Some(v) = lookup(obj, path).or_else(|| lookup(obj, &events_v1_path(path)?)) else {
        return zero_value(field).map(str::to_owned);
    };
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What upstream's field set holds for an absent field of a non-pointer Go type: its zero
/// value printed (`fmt.Sprint(node.Spec.Unschedulable)` is "false" for a schedulable node).
fn zero_value(field: &str) -> Option<&'static str> {
    match field {
        "spec.unschedulable" => Some("false"),
        "status.replicas" | "status.successful" => Some("0"),
        _ => None,
    }
}

fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, part| v.get(part))
}

/// Where an events.k8s.io/v1 Event keeps a core Event's field: upstream evaluates Event field
/// selectors on the internal (core-shaped) object for both group-versions.
fn events_v1_path(core: &str) -> Option<String> {
    let (head, rest) = core.split_once('.').unwrap_or((core, ""));
    let head = match head {
        "involvedObject" => "regarding",
        "reportingComponent" => "reportingController",
        "source" => "deprecatedSource",
        _ => return None,
    };
    Some(if rest.is_empty() {
        head.to_owned()
    } else {
        format!("{head}.{rest}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources::find;
    use serde_json::json;

    fn filter(resource: &str, q: &str) -> Result<Filter, ApiError> {
        Filter::from_query(find("", "v1", resource).unwrap(), &Query::parse(Some(q)))
    }

    #[test]
    fn labels_and_fields_select() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(filter("pods", "labelSelector=app%3Dweb").unwrap().matches(&pod));
        assert!(!filter("pods", "labelSelector=app%3Ddb").unwrap().matches(&pod));
        assert!(
            filter("pods", "fieldSelector=spec.nodeName%3Dn1,status.phase%3DRunning")
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !filter("pods", "fieldSelector=spec.nodeName%21%3Dn1")
                .unwrap()
                .matches(&pod)
        );
        assert!(
            filter("pods", "fieldSelector=metadata.name%3Dp")
                .unwrap()
                .matches(&pod)
        );
        assert!(filter("pods", "").unwrap().matches(&json!({})));
    }

    #[test]
    fn absent_value_fields_select_as_their_zero_value() {
        let schedulable = filter("nodes", "fieldSelector=spec.unschedulable%3D%3Dfalse").unwrap();
        assert!(schedulable.matches(&json!({"spec": {}})));
        assert!(!schedulable.matches(&json!({"spec": {"unschedulable": true}})));
        let cordoned = filter("nodes", "fieldSelector=spec.unschedulable%3Dtrue").unwrap();
        assert!(!cordoned.matches(&json!({"metadata": {"name": "n"}})));
        let empty = filter("replicationcontrollers", "fieldSelector=status.replicas%3D0").unwrap();
        assert!(empty.matches(&json!({"status": {}})));
    }

    #[test]
    fn event_fields_select_both_event_versions() {
        let events = find("events.k8s.io", "v1", "events").unwrap();
        let q = Query::parse(Some(
            "fieldSelector=involvedObject.name%3Dp,source%3Dkubelet,reportingComponent%3Dk",
        ));
        let filter = Filter::from_query(events, &q).unwrap();
        let v1 = json!({"regarding": {"name": "p"}, "deprecatedSource": {"component": "kubelet"}, "reportingController": "k"});
        let core = json!({"involvedObject": {"name": "p"}, "source": {"component": "kubelet"}, "reportingComponent": "k"});
        assert!(filter.matches(&v1) && filter.matches(&core));
        assert!(!filter.matches(&json!({"regarding": {"name": "q"}})));
    }

    #[test]
    fn unsupported_field_labels_are_refused() {
        let err = filter("configmaps", "fieldSelector=spec.nodeName%3Dn1").unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (400, "field label not supported: spec.nodeName")
        );
        assert!(filter("pods", "labelSelector=a%20in%20(").is_err());
    }
}
