//! The CustomResourceDefinition kind itself: defaults, validation (upstream's
//! `ValidateCustomResourceDefinition`, the essentials, with its field paths and wording), the
//! status the apiextensions controllers maintain (NamesAccepted, Established, acceptedNames,
//! storedVersions; set at once, as names are accepted right away), and what each served
//! version of an established CRD means for serving ([`CustomVersion`]).

use apimachinery::resources::{CRUD, ResourceDef};
use apimachinery::status::Cause;
use serde_json::{Value, json};

use super::printer::Column;
use super::scale::ScalePaths;
use super::schema::Schema;
use super::{intern, intern_def, intern_list};
use crate::objects::{self, now_rfc3339};

/// Upstream's finalizer that holds a deleted CRD until its custom resources are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// One served version of an established CRD: how its custom resources are served.
pub struct CustomVersion {
    pub def: &'static ResourceDef,
    pub crd_name: String,
    pub list_kind: String,
    /// The version objects are stored in (conversion strategy None: only apiVersion changes).
    pub storage_version: String,
    pub schema: Option<Schema>,
    /// The version's `openAPIV3Schema` as written (for the OpenAPI documents).
    pub raw_schema: Option<Value>,
    /// The warning every request to a deprecated version carries.
    pub deprecation_warning: Option<String>,
    pub scale: Option<ScalePaths>,
    pub columns: Vec<Column>,
    /// The CRD is being deleted: no new custom resources.
    pub terminating: bool,
    /// Fields field selectors may use besides metadata.name and metadata.namespace
    /// (`selectableFields`, as `spec.color`).
    pub selectable_fields: Vec<String>,
}

impl CustomVersion {
    pub fn has_status(&self) -> bool {
        self.def.has_subresource("status")
    }
}

fn condition_true(crd: &Value, kind: &str) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The served versions of an established CRD (none when it is not established).
pub fn served_versions(crd: &Value) -> Vec<CustomVersion> {
    if !condition_true(crd, "Established") {
        return Vec::new();
    }
    let spec = &crd["spec"];
    // Serve the accepted names (they equal spec.names here: names are accepted at once).
    let names = if crd["status"]["acceptedNames"]["plural"].is_string() {
        &crd["status"]["acceptedNames"]
    } else {
        &spec["names"]
    };
    let (Some(group), Some(plural), Some(kind)) = (
        spec["group"].as_str(),
        names["plural"].as_str(),
        names["kind"].as_str(),
    ) else {
        return Vec::new();
    };
    let singular = names["singular"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = names["listKind"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{kind}List"));
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_owned();
    let terminating = objects::meta_str(crd, "deletionTimestamp").is_some();
    let mut served = Vec::new();
    for version in versions.iter().filter(|v| v["served"] == true) {
        let Some(name) = version["name"].as_str() else {
            continue;
        };
        let subresources = &version["subresources"];
        let mut subs = Vec::new();
        if subresources["scale"].is_object() {
            subs.push("scale".to_owned());
        }
        if subresources["status"].is_object() {
            subs.push("status".to_owned());
        }
        let def = intern_def(ResourceDef {
            group: intern(group),
            version: intern(name),
            plural: intern(plural),
            singular: intern(&singular),
            kind: intern(kind),
            namespaced: spec["scope"] == "Namespaced",
            short_names: intern_list(&strings(&names["shortNames"])),
            categories: intern_list(&strings(&names["categories"])),
            verbs: CRUD,
            subresources: intern_list(&subs),
            storage: intern(&format!("{group}/{plural}")),
        });
        let schema = version["schema"]["openAPIV3Schema"]
            .is_object()
            .then(|| Schema::parse(&version["schema"]["openAPIV3Schema"]).ok())
            .flatten();
        let deprecation_warning = (version["deprecated"] == true).then(|| {
            version["deprecationWarning"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| default_deprecation_warning(group, name, kind, &versions))
        });
        served.push(CustomVersion {
            raw_schema: version["schema"]["openAPIV3Schema"]
                .is_object()
                .then(|| version["schema"]["openAPIV3Schema"].clone()),
            deprecation_warning,
            def,
            crd_name: objects::name(crd).unwrap_or_default().to_owned(),
            list_kind: list_kind.clone(),
            storage_version: storage_version.clone(),
            schema,
            scale: ScalePaths::from_spec(&subresources["scale"]),
            columns: Column::from_version(version),
            terminating,
            selectable_fields: version["selectableFields"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|f| f["jsonPath"].as_str())
                .map(|p| p.trim_start_matches('.').to_owned())
                .collect(),
        });
    }
    served
}

/// Upstream's warning for a deprecated version without its own: the version is deprecated, use
/// the most preferred served, not deprecated, newer version (if any).
fn default_deprecation_warning(group: &str, deprecated: &str, kind: &str, versions: &[Value]) -> String {
    let mut message = format!("{group}/{deprecated} {kind} is deprecated");
    let newer = versions
        .iter()
        .filter(|v| v["served"] == true && v["deprecated"] != true)
        .filter_map(|v| v["name"].as_str())
        .filter(|v| super::compare_versions(v, deprecated) == std::cmp::Ordering::Less)
        .min_by(|a, b| super::compare_versions(a, b));
    if let Some(newer) = newer {
        message.push_str(&format!("; use {group}/{newer} {kind}"));
    }
    message
}

/// Defaults of the v1 API (upstream's `SetDefaults_CustomResourceDefinitionSpec`).
fn set_defaults(crd: &mut Value) {
    let spec = &mut crd["spec"];
    if !spec.is_object() {
        return;
    }
    if let Some(kind) = spec["names"]["kind"].as_str().map(str::to_owned) {
        if spec["names"]["singular"].as_str().is_none_or(str::is_empty) {
            spec["names"]["singular"] = kind.to_lowercase().into();
        }
        if spec["names"]["listKind"].as_str().is_none_or(str::is_empty) {
            spec["names"]["listKind"] = format!("{kind}List").into();
        }
    }
    if !spec["conversion"].is_object() {
        spec["conversion"] = json!({"strategy": "None"});
    } else if spec["conversion"]["strategy"].is_null() {
        spec["conversion"]["strategy"] = "None".into();
    }
}

/// A new CRD: defaults and storedVersions (the REST path then accepts its names against the
/// other CRDs, [`accept_names`]).
pub fn prepare_for_create(crd: &mut Value) {
    set_defaults(crd);
    if let Some(map) = crd.as_object_mut() {
        map.remove("status");
    }
    refresh_status(crd);
}

/// An updated CRD (its status kept by the generic update): defaults, accepted names follow the
/// spec, and a new storage version joins `storedVersions`.
pub fn prepare_for_update(crd: &mut Value) {
    set_defaults(crd);
    refresh_status(crd);
}

fn refresh_status(crd: &mut Value) {
    let storage = crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
        .and_then(|v| v["name"].as_str())
        .map(str::to_owned);
    if !crd["status"].is_object() {
        crd["status"] = json!({});
    }
    let status = &mut crd["status"];
    let mut stored = strings(&status["storedVersions"]);
    if let Some(storage) = storage
        && !stored.contains(&storage)
    {
        stored.push(storage);
    }
    status["storedVersions"] = json!(stored);
}

/// Upstream's naming controller, at once: the requested names are accepted unless another CRD
/// of the group already uses them (NamesAccepted False, reason `PluralConflict` …); a CRD is
/// Established once its names are accepted and stays so.
pub fn accept_names(crd: &mut Value, others: &[Value]) {
    let group = crd["spec"]["group"].clone();
    let own_name = objects::name(crd).unwrap_or_default().to_owned();
    let (mut resources, mut kinds) = (Vec::<String>::new(), Vec::<String>::new());
    for other in others {
        if other["spec"]["group"] != group || objects::name(other) == Some(own_name.as_str()) {
            continue;
        }
        let accepted = &other["status"]["acceptedNames"];
        for field in ["plural", "singular"] {
            resources.extend(accepted[field].as_str().map(str::to_owned));
        }
        resources.extend(strings(&accepted["shortNames"]));
        for field in ["kind", "listKind"] {
            kinds.extend(accepted[field].as_str().map(str::to_owned));
        }
    }
    let requested = crd["spec"]["names"].clone();
    let accepted = crd["status"]["acceptedNames"].clone();
    let mut names = if accepted.is_object() {
        accepted.clone()
    } else {
        json!({})
    };
    let mut conflict: Option<(&str, String)> = None;
    let fresh = |field: &str, used: &[String]| -> Result<(), String> {
        let want = requested[field].as_str().unwrap_or_default();
        if want == accepted[field].as_str().unwrap_or_default() || !used.iter().any(|u| u == want) {
            Ok(())
        } else {
            Err(format!("{want:?} is already in use"))
        }
    };
    for (field, reason, used) in [
        ("plural", "PluralConflict", &resources),
        ("singular", "SingularConflict", &resources),
    ] {
        match fresh(field, used) {
            Ok(()) => names[field] = requested[field].clone(),
            Err(msg) => conflict = Some((reason, msg)),
        }
    }
    if requested["shortNames"] != accepted["shortNames"] {
        let existing = strings(&accepted["shortNames"]);
        let taken: Vec<String> = strings(&requested["shortNames"])
            .into_iter()
            .filter(|s| !existing.contains(s) && resources.contains(s))
            .map(|s| format!("{s:?} is already in use"))
            .collect();
        match taken.len() {
            0 => names["shortNames"] = requested["shortNames"].clone(),
            1 => conflict = Some(("ShortNamesConflict", taken[0].clone())),
            _ => conflict = Some(("ShortNamesConflict", format!("[{}]", taken.join(", ")))),
        }
    }
    for (field, reason) in [("kind", "KindConflict"), ("listKind", "ListKindConflict")] {
        match fresh(field, &kinds) {
            Ok(()) => names[field] = requested[field].clone(),
            Err(msg) => conflict = Some((reason, msg)),
        }
    }
    names["categories"] = requested["categories"].clone();
    if let Some(map) = names.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    if !crd["status"].is_object() {
        crd["status"] = json!({});
    }
    let status = &mut crd["status"];
    status["acceptedNames"] = names;
    let established = condition_true(&json!({"status": status.clone()}), "Established");
    match conflict {
        None => {
            set_condition(
                status,
                "NamesAccepted",
                "True",
                "NoConflicts",
                "no conflicts found",
            );
            if !established {
                set_condition(
                    status,
                    "Established",
                    "True",
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                );
            }
        }
        Some((reason, message)) => {
            set_condition(status, "NamesAccepted", "False", reason, &message);
            if !established {
                set_condition(
                    status,
                    "Established",
                    "False",
                    "NotAccepted",
                    "not all names are accepted",
                );
            }
        }
    }
}

/// Sets a condition, keeping its lastTransitionTime when its status does not change.
pub fn set_condition(status: &mut Value, kind: &str, value: &str, reason: &str, message: &str) {
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let conditions = status["conditions"].as_array_mut().expect("just made an array");
    let fresh = json!({
        "type": kind, "status": value, "lastTransitionTime": now_rfc3339(),
        "reason": reason, "message": message,
    });
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(existing) => {
            let mut fresh = fresh;
            if existing["status"] == value {
                fresh["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = fresh;
        }
        None => conditions.push(fresh),
    }
}

const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn dns1035_errors(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-';
    (!ok).then(|| DNS1035_MSG.to_owned())
}

fn dns1123_subdomain_ok(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// Validates a CRD (`old` on update), as upstream's essentials.
pub fn validate(crd: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let name = objects::name(crd).unwrap_or_default();
    if old.is_none() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            &Value::from(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        causes.push(Cause::required("spec.group"));
    } else if !dns1123_subdomain_ok(group) {
        causes.push(Cause::invalid(
            "spec.group",
            &Value::from(group),
            DNS1123_SUBDOMAIN_MSG,
        ));
    } else if !group.contains('.') {
        causes.push(Cause::invalid(
            "spec.group",
            &Value::from(group),
            "should be a domain with at least one dot",
        ));
    }
    match spec["scope"].as_str().unwrap_or_default() {
        "" => causes.push(Cause::required("spec.scope")),
        "Cluster" | "Namespaced" => {}
        other => causes.push(Cause::not_supported(
            "spec.scope",
            &Value::from(other),
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let mut seen = Vec::new();
    let mut storage_count = 0;
    // Upstream validates the internal form, where identical per-version schemas are hoisted to
    // `spec.validation` (v1 conversion): their errors are reported there, once.
    let hoisted = !versions.is_empty()
        && versions[0]["schema"]["openAPIV3Schema"].is_object()
        && versions.iter().all(|v| v["schema"] == versions[0]["schema"]);
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let vname = version["name"].as_str().unwrap_or_default();
        if let Some(msg) = dns1035_errors(vname) {
            causes.push(Cause::invalid(&format!("{path}.name"), &Value::from(vname), &msg));
        }
        if version["storage"] == true {
            storage_count += 1;
        }
        seen.push(vname.to_owned());
        let schema = &version["schema"]["openAPIV3Schema"];
        let schema_path = if hoisted {
            "spec.validation.openAPIV3Schema".to_owned()
        } else {
            format!("{path}.schema.openAPIV3Schema")
        };
        // A hoisted schema's errors are reported once, with the first version.
        let reported_before = hoisted && i > 0;
        if reported_before {
        } else if !schema.is_object() {
            causes.push(Cause::new(
                "FieldValueRequired",
                &schema_path,
                "Required value: schemas are required",
            ));
        } else {
            structural_causes(schema, &schema_path, Level::Root, &mut causes);
            super::validation_rules::compile_errors(schema, &schema_path, &mut causes);
            if version["subresources"]["status"].is_object()
                && schema["type"].as_str().is_some_and(|t| t != "object")
            {
                causes.push(Cause::invalid(
                    &format!("{schema_path}.type"),
                    &schema["type"],
                    "only \"object\" is allowed as the type at the root of the schema if the status subresource is enabled",
                ));
            }
        }
        validate_scale(
            &version["subresources"]["scale"],
            &format!("{path}.subresources"),
            &mut causes,
        );
        for (j, col) in version["additionalPrinterColumns"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            validate_column(col, &format!("{path}.additionalPrinterColumns[{j}]"), &mut causes);
        }
    }
    let unique = seen.iter().enumerate().all(|(i, v)| !seen[..i].contains(v));
    if !unique {
        causes.push(Cause::invalid(
            "spec.versions",
            &spec["versions"],
            "must contain unique version names",
        ));
    }
    if storage_count != 1 {
        causes.push(Cause::invalid(
            "spec.versions",
            &spec["versions"],
            "must have exactly one version marked as storage version",
        ));
    }
    for field in ["plural", "singular", "kind", "listKind"] {
        if names[field].as_str().is_none_or(str::is_empty) {
            causes.push(Cause::required(&format!("spec.names.{field}")));
        }
    }
    names_causes(names, "spec.names", &mut causes);
    if let Some(old) = old {
        for (path, new, before) in [
            ("spec.group", &spec["group"], &old["spec"]["group"]),
            (
                "spec.names.plural",
                &names["plural"],
                &old["spec"]["names"]["plural"],
            ),
        ] {
            if new != before {
                causes.push(Cause::invalid(path, new, "field is immutable"));
            }
        }
        if condition_true(old, "Established") {
            for (path, new, before) in [
                ("spec.scope", &spec["scope"], &old["spec"]["scope"]),
                ("spec.names.kind", &names["kind"], &old["spec"]["names"]["kind"]),
            ] {
                if new != before {
                    causes.push(Cause::invalid(path, new, "field is immutable"));
                }
            }
        }
    }
    api_approval(crd, old, &mut causes);
    match spec["conversion"]["strategy"].as_str() {
        None | Some("None") => {}
        Some("Webhook") => {
            if !spec["conversion"]["webhook"]["clientConfig"].is_object() {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    "spec.conversion.webhookClientConfig",
                    "Required value: required when strategy is set to Webhook",
                ));
            }
        }
        Some(other) => causes.push(Cause::not_supported(
            "spec.conversion.strategy",
            &Value::from(other),
            &["None", "Webhook"],
        )),
    }
    let preserved_before = old.is_some_and(|o| o["spec"]["preserveUnknownFields"] == true);
    if spec["preserveUnknownFields"] == true && !preserved_before {
        causes.push(Cause::invalid(
            "spec.preserveUnknownFields",
            &Value::Bool(true),
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ));
    }
    let stored = strings(&crd["status"]["storedVersions"]);
    for v in &stored {
        if !seen.contains(v) {
            let i = stored.iter().position(|s| s == v).unwrap_or_default();
            causes.push(Cause::invalid(
                &format!("status.storedVersions[{i}]"),
                &Value::from(v.as_str()),
                &format!("missing from spec.versions; {v} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {v} and removes {v} from status.storedVersions"),
            ));
        }
    }
    causes
}

const APPROVAL: &str = "api-approved.kubernetes.io";

#[derive(PartialEq)]
enum Approval {
    Missing,
    Bypassed,
    Approved,
    Invalid,
}

fn approval_state(crd: &Value) -> (Approval, String) {
    let annotation = crd["metadata"]["annotations"][APPROVAL]
        .as_str()
        .unwrap_or_default();
    let url_like = annotation.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
            && !rest.starts_with('/')
    });
    if annotation.is_empty() {
        (
            Approval::Missing,
            format!(
                "protected groups must have approval annotation {APPROVAL:?}, see https://github.com/kubernetes/enhancements/pull/1111"
            ),
        )
    } else if annotation.starts_with("unapproved") {
        (Approval::Bypassed, format!("not approved: {annotation:?}"))
    } else if url_like {
        (Approval::Approved, format!("approved in {annotation}"))
    } else {
        (
            Approval::Invalid,
            format!(
                "protected groups must have approval annotation {APPROVAL:?} with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111"
            ),
        )
    }
}

/// Groups of the Kubernetes project (`*.k8s.io`, `*.kubernetes.io`) need an API review
/// annotation (upstream's `validateAPIApproval`).
fn api_approval(crd: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let protected = group == "k8s.io"
        || group.ends_with(".k8s.io")
        || group == "kubernetes.io"
        || group.ends_with(".kubernetes.io");
    if !protected {
        return;
    }
    let (state, reason) = approval_state(crd);
    if old.is_some_and(|o| approval_state(o).0 == state) {
        return;
    }
    let path = format!("metadata.annotations[{APPROVAL}]");
    match state {
        Approval::Approved | Approval::Bypassed => {}
        Approval::Missing => causes.push(Cause::new(
            "FieldValueRequired",
            &path,
            format!("Required value: {reason}"),
        )),
        Approval::Invalid => causes.push(Cause::invalid(
            &path,
            &crd["metadata"]["annotations"][APPROVAL],
            &reason,
        )),
    }
}

fn names_causes(names: &Value, path: &str, causes: &mut Vec<Cause>) {
    for field in ["plural", "singular"] {
        if let Some(v) = names[field].as_str().filter(|v| !v.is_empty())
            && let Some(msg) = dns1035_errors(v)
        {
            causes.push(Cause::invalid(&format!("{path}.{field}"), &Value::from(v), &msg));
        }
    }
    for field in ["kind", "listKind"] {
        if let Some(v) = names[field].as_str().filter(|v| !v.is_empty())
            && let Some(msg) = dns1035_errors(&v.to_lowercase())
        {
            causes.push(Cause::invalid(
                &format!("{path}.{field}"),
                &Value::from(v),
                &format!("may have mixed case, but should otherwise match: {msg}"),
            ));
        }
    }
    for field in ["shortNames", "categories"] {
        for (i, v) in strings(&names[field]).iter().enumerate() {
            if let Some(msg) = dns1035_errors(v) {
                causes.push(Cause::invalid(
                    &format!("{path}.{field}[{i}]"),
                    &Value::from(v.as_str()),
                    &msg,
                ));
            }
        }
    }
    if names["kind"].as_str().is_some_and(|k| !k.is_empty()) && names["kind"] == names["listKind"] {
        causes.push(Cause::invalid(
            &format!("{path}.listKind"),
            &names["listKind"],
            "kind and listKind may not be the same",
        ));
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

/// Upstream's structural-schema invariants that matter most: every node has a type.
fn structural_causes(s: &Value, path: &str, level: Level, causes: &mut Vec<Cause>) {
    let kind = s["type"].as_str().unwrap_or_default();
    let flag = |k: &str| s[k] == true;
    if kind == "array" && !s["items"].is_object() {
        causes.push(Cause::new(
            "FieldValueRequired",
            &format!("{path}.items"),
            "Required value: must be specified",
        ));
    }
    if let Some(items) = s["items"].as_object() {
        structural_causes(
            &Value::Object(items.clone()),
            &format!("{path}.items"),
            Level::Item,
            causes,
        );
    }
    if let Some(props) = s["properties"].as_object() {
        for (k, p) in props {
            structural_causes(p, &format!("{path}.properties[{k}]"), Level::Field, causes);
        }
    }
    if let Some(additional) = s.get("additionalProperties").filter(|a| !a.is_null()) {
        if level == Level::Root {
            causes.push(Cause::forbidden(
                &format!("{path}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if additional.is_object() {
            structural_causes(
                additional,
                &format!("{path}.additionalProperties"),
                Level::Field,
                causes,
            );
        }
    }
    if flag("x-kubernetes-embedded-resource") && kind != "object" {
        if kind.is_empty() {
            causes.push(Cause::new(
                "FieldValueRequired",
                &format!("{path}.type"),
                "Required value: must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            causes.push(Cause::invalid(
                &format!("{path}.type"),
                &s["type"],
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if kind.is_empty()
        && !flag("x-kubernetes-int-or-string")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        causes.push(Cause::new(
            "FieldValueRequired",
            &format!("{path}.type"),
            format!("Required value: {detail}"),
        ));
    }
    if level == Level::Root && !kind.is_empty() && kind != "object" {
        causes.push(Cause::invalid(
            &format!("{path}.type"),
            &s["type"],
            "must be object at the root",
        ));
    }
    let check_metadata = level == Level::Root || flag("x-kubernetes-embedded-resource");
    if let Some(meta) = s["properties"].get("metadata") {
        let meta_path = format!("{path}.properties[metadata]");
        if check_metadata && meta["type"] != "object" {
            causes.push(Cause::invalid(
                &format!("{meta_path}.type"),
                &meta["type"],
                "must be object",
            ));
        }
        let only_names = meta["properties"]
            .as_object()
            .is_none_or(|p| p.keys().all(|k| k == "name" || k == "generateName"));
        let only_allowed = meta
            .as_object()
            .is_some_and(|m| m.keys().all(|k| k == "type" || k == "properties"));
        if level == Level::Root && !(only_names && only_allowed) {
            causes.push(Cause::forbidden(
                &meta_path,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if let Some(p) = s["pattern"].as_str()
        && let Err(e) = regex::Regex::new(p)
    {
        causes.push(Cause::invalid(
            &format!("{path}.pattern"),
            &Value::from(p),
            &format!("must be a valid regular expression, but isn't: {e}"),
        ));
    }
}

fn simple_json_path_error(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("must not be empty")
    } else if !s.starts_with('.') {
        Some("must be a simple json path starting with .")
    } else {
        None
    }
}

fn validate_scale(scale: &Value, path: &str, causes: &mut Vec<Cause>) {
    if !scale.is_object() {
        return;
    }
    for (field, prefix, under) in [
        ("specReplicasPath", ".spec.", "should be a json path under .spec"),
        (
            "statusReplicasPath",
            ".status.",
            "should be a json path under .status",
        ),
    ] {
        let p = scale[field].as_str().unwrap_or_default();
        let fpath = format!("{path}.scale.{field}");
        if p.is_empty() {
            causes.push(Cause::required(&fpath));
        } else if let Some(msg) = simple_json_path_error(p) {
            causes.push(Cause::invalid(&fpath, &Value::from(p), msg));
        } else if !p.starts_with(prefix) {
            causes.push(Cause::invalid(&fpath, &Value::from(p), under));
        }
    }
    if let Some(p) = scale["labelSelectorPath"].as_str().filter(|p| !p.is_empty()) {
        let fpath = format!("{path}.scale.labelSelectorPath");
        if let Some(msg) = simple_json_path_error(p) {
            causes.push(Cause::invalid(&fpath, &Value::from(p), msg));
        } else if !p.starts_with(".spec.") && !p.starts_with(".status.") {
            causes.push(Cause::invalid(
                &fpath,
                &Value::from(p),
                "should be a json path under either .spec or .status",
            ));
        }
    }
}

fn validate_column(col: &Value, path: &str, causes: &mut Vec<Cause>) {
    const TYPES: &str = "boolean,date,integer,number,string";
    const FORMATS: &str = "byte,date,date-time,double,float,int32,int64,password";
    if col["name"].as_str().is_none_or(str::is_empty) {
        causes.push(Cause::required(&format!("{path}.name")));
    }
    match col["type"].as_str().unwrap_or_default() {
        "" => causes.push(Cause::new(
            "FieldValueRequired",
            &format!("{path}.type"),
            format!("Required value: must be one of {TYPES}"),
        )),
        t if TYPES.split(',').any(|x| x == t) => {}
        t => causes.push(Cause::invalid(
            &format!("{path}.type"),
            &Value::from(t),
            &format!("must be one of {TYPES}"),
        )),
    }
    if let Some(f) = col["format"].as_str().filter(|f| !f.is_empty())
        && !FORMATS.split(',').any(|x| x == f)
    {
        causes.push(Cause::invalid(
            &format!("{path}.format"),
            &Value::from(f),
            &format!("must be one of {FORMATS}"),
        ));
    }
    match col["jsonPath"].as_str().unwrap_or_default() {
        "" => causes.push(Cause::required(&format!("{path}.JSONPath"))),
        p => {
            if let Some(msg) = simple_json_path_error(p) {
                causes.push(Cause::invalid(&format!("{path}.JSONPath"), &Value::from(p), msg));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object"}}}},
                    "subresources": {"status": {}}}]
            }
        })
    }

    #[test]
    fn a_new_crd_is_defaulted_and_established() {
        let mut c = crd();
        prepare_for_create(&mut c);
        accept_names(&mut c, &[]);
        assert!(validate(&c, None).is_empty(), "{:?}", validate(&c, None));
        assert_eq!(c["spec"]["names"]["singular"], "widget");
        assert_eq!(c["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
        assert!(condition_true(&c, "Established") && condition_true(&c, "NamesAccepted"));
        let served = served_versions(&c);
        assert_eq!(served.len(), 1);
        assert_eq!(
            served[0].def.key(Some("ns"), "a"),
            "/registry/example.com/widgets/ns/a"
        );
        assert_eq!(served[0].def.subresources, ["status"]);
        assert_eq!(served[0].def.short_names, ["wd"]);
    }

    #[test]
    fn names_taken_by_another_crd_of_the_group_are_not_accepted() {
        let mut first = crd();
        prepare_for_create(&mut first);
        accept_names(&mut first, &[]);
        let mut second = crd();
        second["metadata"]["name"] = "gizmos.example.com".into();
        second["spec"]["names"] = json!({"plural": "gizmos", "kind": "Gizmo", "shortNames": ["wd"]});
        prepare_for_create(&mut second);
        accept_names(&mut second, std::slice::from_ref(&first));
        let accepted = &second["status"]["conditions"][0];
        assert_eq!(
            (
                &accepted["type"],
                &accepted["status"],
                &accepted["reason"],
                &accepted["message"]
            ),
            (
                &json!("NamesAccepted"),
                &json!("False"),
                &json!("ShortNamesConflict"),
                &json!("\"wd\" is already in use")
            )
        );
        assert!(!condition_true(&second, "Established"));
        assert!(served_versions(&second).is_empty());
    }

    #[test]
    fn deprecated_versions_point_to_a_newer_one() {
        let versions = vec![
            json!({"name": "v1alpha1", "served": true, "deprecated": true}),
            json!({"name": "v1beta1", "served": true}),
            json!({"name": "v1", "served": true}),
            json!({"name": "v2", "served": false}),
        ];
        assert_eq!(
            default_deprecation_warning("example.com", "v1alpha1", "Widget", &versions),
            "example.com/v1alpha1 Widget is deprecated; use example.com/v1 Widget"
        );
        assert_eq!(
            default_deprecation_warning("example.com", "v3", "Widget", &versions),
            "example.com/v3 Widget is deprecated"
        );
    }

    #[test]
    fn validation_reports_upstream_fields() {
        let mut c = crd();
        c["metadata"]["name"] = "wrong.example.com".into();
        c["spec"]["versions"][0]["storage"] = false.into();
        c["spec"]["scope"] = "Global".into();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
            json!({"properties": {}});
        prepare_for_create(&mut c);
        let fields: Vec<String> = validate(&c, None)
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert!(fields.contains(&"metadata.name: Invalid value: \"wrong.example.com\": must be spec.names.plural+\".\"+spec.group".to_owned()), "{fields:?}");
        assert!(
            fields
                .iter()
                .any(|f| f.starts_with("spec.versions: Invalid value")
                    && f.ends_with("must have exactly one version marked as storage version")),
            "{fields:?}"
        );
        assert!(
            fields.contains(
                &"spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\""
                    .to_owned()
            )
        );
        assert!(fields.contains(&"spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields".to_owned()), "{fields:?}");
    }
}
