//! Structural schemas (a CRD version's `openAPIV3Schema`) applied to custom resources as
//! upstream's apiextensions-apiserver does: pruning of unknown fields, defaulting, and
//! validation with kube-openapi's error wording (`spec.replicas in body must be of type
//! integer: "string"`), turned into field causes the way upstream converts them.

use std::collections::BTreeMap;

use apimachinery::status::Cause;
use base64::Engine;
use serde_json::{Map, Value};

/// One node of a structural schema.
#[derive(Debug, Default)]
pub struct Schema {
    pub(super) kind: Option<String>,
    pub(super) format: Option<String>,
    nullable: bool,
    pub(super) int_or_string: bool,
    pub(super) preserve_unknown: bool,
    pub(super) embedded_resource: bool,
    /// `x-kubernetes-list-type: set`: items must be unique.
    list_set: bool,
    /// `x-kubernetes-list-type: map`: the keys that must be unique across items.
    pub(super) list_map_keys: Option<Vec<String>>,
    pub(super) properties: BTreeMap<String, Schema>,
    pub(super) items: Option<Box<Schema>>,
    pub(super) additional: Additional,
    required: Vec<String>,
    enumeration: Vec<Value>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: bool,
    exclusive_maximum: bool,
    multiple_of: Option<f64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<(String, regex::Regex)>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    default: Option<Value>,
    /// allOf / anyOf / oneOf / not: only validated (structural schemas keep types out of them).
    all_of: Vec<Schema>,
    any_of: Vec<Schema>,
    one_of: Vec<Schema>,
    not: Option<Box<Schema>>,
    /// `x-kubernetes-validations`, compiled once with the schema.
    pub(super) rules: Vec<super::validation_rules::Rule>,
}

#[derive(Debug, Default)]
pub(super) enum Additional {
    /// Not set: unknown fields are pruned (or kept with x-kubernetes-preserve-unknown-fields).
    #[default]
    Unset,
    /// `additionalProperties: false`.
    Forbidden,
    /// `additionalProperties: true` or a schema: a map; every value follows the schema.
    Schema(Box<Schema>),
}

impl Schema {
    /// Reads a JSONSchemaProps; errors name the first unusable piece (a bad regular expression).
    pub fn parse(v: &Value) -> Result<Schema, String> {
        let u64_of = |k: &str| v.get(k).and_then(Value::as_u64);
        let f64_of = |k: &str| v.get(k).and_then(Value::as_f64);
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        let mut properties = BTreeMap::new();
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                properties.insert(k.clone(), Schema::parse(p)?);
            }
        }
        let items = match v.get("items") {
            Some(i) if i.is_object() => Some(Box::new(Schema::parse(i)?)),
            _ => None,
        };
        let additional = match v.get("additionalProperties") {
            Some(Value::Bool(false)) => Additional::Forbidden,
            Some(Value::Bool(true)) => Additional::Schema(Box::new(Schema {
                preserve_unknown: true,
                ..Schema::default()
            })),
            Some(s @ Value::Object(_)) => Additional::Schema(Box::new(Schema::parse(s)?)),
            _ => Additional::Unset,
        };
        let pattern = match v.get("pattern").and_then(Value::as_str) {
            Some(p) => Some((
                p.to_owned(),
                regex::Regex::new(p).map_err(|e| format!("pattern {p:?}: {e}"))?,
            )),
            None => None,
        };
        let list = |k: &str| -> Result<Vec<Schema>, String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(Schema::parse).collect())
                .unwrap_or(Ok(Vec::new()))
        };
        Ok(Schema {
            kind: v.get("type").and_then(Value::as_str).map(str::to_owned),
            format: v.get("format").and_then(Value::as_str).map(str::to_owned),
            nullable: flag("nullable"),
            int_or_string: flag("x-kubernetes-int-or-string"),
            preserve_unknown: flag("x-kubernetes-preserve-unknown-fields"),
            embedded_resource: flag("x-kubernetes-embedded-resource"),
            list_set: v.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set"),
            list_map_keys: (v.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map")).then(
                || {
                    v.get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|keys| keys.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                        .unwrap_or_default()
                },
            ),
            properties,
            items,
            additional,
            required: v
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            enumeration: v
                .get("enum")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            minimum: f64_of("minimum"),
            maximum: f64_of("maximum"),
            exclusive_minimum: flag("exclusiveMinimum"),
            exclusive_maximum: flag("exclusiveMaximum"),
            multiple_of: f64_of("multipleOf"),
            min_length: u64_of("minLength"),
            max_length: u64_of("maxLength"),
            pattern,
            min_items: u64_of("minItems"),
            max_items: u64_of("maxItems"),
            unique_items: flag("uniqueItems"),
            min_properties: u64_of("minProperties"),
            max_properties: u64_of("maxProperties"),
            default: v.get("default").cloned(),
            all_of: list("allOf")?,
            any_of: list("anyOf")?,
            one_of: list("oneOf")?,
            not: match v.get("not") {
                Some(n) if n.is_object() => Some(Box::new(Schema::parse(n)?)),
                _ => None,
            },
            rules: Vec::new(),
        }
        .with_rules(v))
    }

    /// Compiles the node's `x-kubernetes-validations`, checked against the node itself.
    fn with_rules(mut self, v: &Value) -> Schema {
        if let Some(rules) = v.get("x-kubernetes-validations").and_then(Value::as_array) {
            self.rules = rules
                .iter()
                .map(|r| super::validation_rules::Rule::compile(r, &self))
                .collect();
        }
        self
    }

    /// Whether this node keeps fields it does not declare.
    fn keeps_unknown(&self) -> bool {
        self.preserve_unknown
    }
}

/// Removes fields the schema does not declare (upstream's structural pruning). At the root and
/// in embedded resources, `apiVersion`, `kind` and `metadata` are always kept. Returns the paths
/// removed (`spec.foo`, `spec.items[0].bar`), for strict field validation.
pub fn prune(obj: &mut Value, schema: &Schema) -> Vec<String> {
    // Unknown metadata fields first, as upstream reports them.
    let mut removed = prune_metadata(obj, "");
    let mut embedded = Vec::new();
    prune_node(obj, schema, true, "", &mut removed, &mut embedded);
    removed.extend(embedded);
    removed
}

/// The fields of ObjectMeta: anything else under a resource's `metadata` is dropped (upstream
/// decodes metadata into its type).
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn prune_metadata(resource: &mut Value, path: &str) -> Vec<String> {
    let mut removed = Vec::new();
    if let Some(meta) = resource.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, _| {
            let known = OBJECT_META.contains(&k.as_str());
            if !known {
                removed.push(child_path(&child_path(path, "metadata"), k));
            }
            known
        });
    }
    removed
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn prune_node(
    value: &mut Value,
    schema: &Schema,
    resource_root: bool,
    path: &str,
    removed: &mut Vec<String>,
    embedded: &mut Vec<String>,
) {
    if schema.embedded_resource && !resource_root {
        embedded.extend(prune_metadata(value, path));
    }
    match value {
        Value::Object(map) => {
            let is_resource = resource_root || schema.embedded_resource;
            if let Additional::Schema(values) = &schema.additional {
                for (k, v) in map.iter_mut() {
                    prune_node(v, values, false, &child_path(path, k), removed, embedded);
                }
                return;
            }
            map.retain(|k, _| {
                let keep = schema.keeps_unknown()
                    || schema.properties.contains_key(k)
                    || (is_resource && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"));
                if !keep {
                    removed.push(child_path(path, k));
                }
                keep
            });
            for (k, v) in map.iter_mut() {
                if is_resource && k == "metadata" {
                    continue;
                }
                if let Some(p) = schema.properties.get(k) {
                    prune_node(v, p, false, &child_path(path, k), removed, embedded);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_node(
                        item,
                        item_schema,
                        false,
                        &format!("{path}[{i}]"),
                        removed,
                        embedded,
                    );
                }
            }
        }
        _ => {}
    }
}

/// Applies `default`s to absent fields (after dropping nulls of non-nullable fields that have a
/// default, as upstream does), recursively.
pub fn default(value: &mut Value, schema: &Schema) {
    match value {
        Value::Object(map) => {
            // A null in a field that is neither nullable nor defaulted is dropped, not refused.
            map.retain(|k, v| {
                let field = match (schema.properties.get(k), &schema.additional) {
                    (Some(p), _) => Some(p),
                    (None, Additional::Schema(values)) => Some(&**values),
                    _ => None,
                };
                !(v.is_null() && field.is_some_and(|f| !f.nullable && f.default.is_none()))
            });
            for (k, p) in &schema.properties {
                let Some(d) = &p.default else { continue };
                match map.get(k) {
                    None => {
                        map.insert(k.clone(), d.clone());
                    }
                    Some(Value::Null) if !p.nullable => {
                        map.insert(k.clone(), d.clone());
                    }
                    _ => {}
                }
            }
            for (k, v) in map.iter_mut() {
                if let Some(p) = schema.properties.get(k) {
                    default(v, p);
                } else if let Additional::Schema(values) = &schema.additional {
                    default(v, values);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for item in items {
                    default(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

/// Validates a custom resource; `metadata` is checked only for the name rules a schema may
/// state (as upstream, which ignores everything else under metadata).
pub fn validate(obj: &Value, schema: &Schema) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut v = Validator { causes: &mut causes };
    v.node(obj, schema, "", true);
    causes
}

struct Validator<'a> {
    causes: &'a mut Vec<Cause>,
}

/// kube-openapi's name for the type of a value (what `must be of type` errors quote).
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

/// Numbers as upstream prints them in messages (`%v` of an int64 or float64).
fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// The field path of a cause: kube-openapi's name without the leading dot.
fn field(path: &str) -> String {
    path.trim_start_matches('.').to_owned()
}

/// The name kube-openapi puts in messages: the path, or nothing at the root.
fn shown(path: &str) -> String {
    field(path)
}

impl Validator<'_> {
    fn invalid(&mut self, path: &str, value: &Value, detail: String) {
        self.causes.push(Cause::invalid(&field(path), value, &detail));
    }

    fn node(&mut self, value: &Value, schema: &Schema, path: &str, root: bool) {
        if value.is_null() {
            if schema.nullable || schema.kind.is_none() && !schema.int_or_string {
                return;
            }
            let expected = if schema.int_or_string {
                "integer,string".to_owned()
            } else {
                schema.kind.clone().unwrap_or_default()
            };
            let detail = format!("{} in body must be of type {expected}: \"null\"", shown(path));
            self.causes.push(Cause::new(
                "FieldValueTypeInvalid",
                &field(path),
                format!("Invalid value: \"null\": {detail}"),
            ));
            return;
        }
        if !self.check_type(value, schema, path) {
            return;
        }
        if !schema.enumeration.is_empty() && !schema.enumeration.contains(value) {
            let supported: Vec<String> = schema
                .enumeration
                .iter()
                .map(|e| match e {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
            self.causes.push(Cause::not_supported(&field(path), value, &refs));
        }
        match value {
            Value::Object(map) => self.object(map, schema, path, root),
            Value::Array(items) => self.array(items, schema, path),
            Value::String(s) => self.string(s, value, schema, path),
            Value::Number(n) => self.number(n.as_f64().unwrap_or_default(), value, schema, path),
            _ => {}
        }
        for sub in &schema.all_of {
            self.node(value, sub, path, root);
        }
        if !schema.any_of.is_empty() && !schema.any_of.iter().any(|s| passes(value, s, path)) {
            self.invalid(
                path,
                value,
                format!("{} in body must be of type {}", shown(path), "any of the schemas"),
            );
        }
        if !schema.one_of.is_empty() && schema.one_of.iter().filter(|s| passes(value, s, path)).count() != 1 {
            self.invalid(
                path,
                value,
                format!(
                    "{} in body must validate one and only one schema (oneOf)",
                    shown(path)
                ),
            );
        }
        if let Some(not) = &schema.not
            && passes(value, not, path)
        {
            self.invalid(
                path,
                value,
                format!("{} in body must not validate the schema (not)", shown(path)),
            );
        }
    }

    /// The type check; false when it failed (nothing else is checked then).
    fn check_type(&mut self, value: &Value, schema: &Schema, path: &str) -> bool {
        let ok = if schema.int_or_string {
            is_integer(value) || value.is_string()
        } else {
            match schema.kind.as_deref() {
                None | Some("") => true,
                Some("integer") => is_integer(value),
                Some("number") => value.is_number(),
                Some("string") => value.is_string(),
                Some("boolean") => value.is_boolean(),
                Some("array") => value.is_array(),
                Some("object") => value.is_object(),
                Some(_) => true,
            }
        };
        if !ok {
            let expected = if schema.int_or_string {
                "integer,string".to_owned()
            } else {
                schema.kind.clone().unwrap_or_default()
            };
            let actual = type_name(value);
            let detail = format!("{} in body must be of type {expected}: \"{actual}\"", shown(path));
            self.causes.push(Cause::new(
                "FieldValueTypeInvalid",
                &field(path),
                format!("Invalid value: \"{actual}\": {detail}"),
            ));
        }
        ok
    }

    fn object(&mut self, map: &Map<String, Value>, schema: &Schema, path: &str, root: bool) {
        let n = map.len() as u64;
        if let Some(min) = schema.min_properties
            && n < min
        {
            self.invalid(
                path,
                &Value::from(n),
                format!("{} in body should have at least {min} properties", shown(path)),
            );
        }
        if let Some(max) = schema.max_properties
            && n > max
        {
            self.causes.push(Cause::new(
                "FieldValueTooMany",
                &field(path),
                format!("Too many: {n}: must have at most {max} items"),
            ));
        }
        let is_resource = root || schema.embedded_resource;
        if schema.embedded_resource && !root {
            self.embedded_resource(map, path);
        }
        for (k, p) in &schema.properties {
            let Some(v) = map.get(k) else { continue };
            let child = format!("{path}.{k}");
            if is_resource && k == "metadata" {
                self.metadata(v, p, &child);
                continue;
            }
            self.node(v, p, &child, false);
        }
        for k in &schema.required {
            if !map.contains_key(k) {
                self.causes.push(Cause::required(&field(&format!("{path}.{k}"))));
            }
        }
        match &schema.additional {
            Additional::Schema(values) => {
                for (k, v) in map {
                    if !schema.properties.contains_key(k) {
                        self.node(v, values, &format!("{path}.{k}"), false);
                    }
                }
            }
            Additional::Forbidden => {
                for k in map.keys() {
                    if !schema.properties.contains_key(k) {
                        self.causes.push(Cause::forbidden(
                            &field(&format!("{path}.{k}")),
                            &format!("{}.{k} in body is a forbidden property", shown(path)),
                        ));
                    }
                }
            }
            Additional::Unset => {}
        }
    }

    /// An embedded object (`x-kubernetes-embedded-resource`) names its apiVersion and kind.
    fn embedded_resource(&mut self, map: &Map<String, Value>, path: &str) {
        for key in ["apiVersion", "kind"] {
            let child = field(&format!("{path}.{key}"));
            match map.get(key) {
                None => self.causes.push(Cause::new(
                    "FieldValueRequired",
                    &child,
                    "Required value: must not be empty",
                )),
                Some(Value::String(s)) if s.is_empty() => {
                    self.causes
                        .push(Cause::invalid(&child, &Value::from(""), "must not be empty"))
                }
                Some(Value::String(_)) => {}
                Some(other) => self
                    .causes
                    .push(Cause::invalid(&child, other, "must be a string")),
            }
        }
    }

    /// Under `metadata` only `name` and `generateName` may be constrained (strings).
    fn metadata(&mut self, meta: &Value, schema: &Schema, path: &str) {
        for key in ["name", "generateName"] {
            if let (Some(v), Some(p)) = (meta.get(key), schema.properties.get(key)) {
                self.node(v, p, &format!("{path}.{key}"), false);
            }
        }
    }

    fn array(&mut self, items: &[Value], schema: &Schema, path: &str) {
        if let Some(item_schema) = &schema.items {
            for (i, item) in items.iter().enumerate() {
                self.node(item, item_schema, &format!("{path}[{i}]"), false);
            }
        }
        let n = items.len() as u64;
        if let Some(min) = schema.min_items
            && n < min
        {
            self.invalid(
                path,
                &Value::from(n),
                format!("{} in body should have at least {min} items", shown(path)),
            );
        }
        if let Some(max) = schema.max_items
            && n > max
        {
            self.causes.push(Cause::new(
                "FieldValueTooMany",
                &field(path),
                format!("Too many: {n}: must have at most {max} items"),
            ));
        }
        if schema.list_set {
            // Each duplicated value is reported once, at its second occurrence (as upstream).
            for (i, item) in items.iter().enumerate() {
                if items[..i].iter().filter(|x| *x == item).count() == 1 {
                    self.causes
                        .push(Cause::duplicate(&field(&format!("{path}[{i}]")), item));
                }
            }
        }
        if let Some(keys) = &schema.list_map_keys {
            self.list_map(items, keys, path);
        }
        if schema.unique_items {
            let has_duplicates = items.iter().enumerate().any(|(i, a)| items[..i].contains(a));
            if has_duplicates {
                self.causes
                    .push(Cause::duplicate(&field(path), &Value::Array(items.to_vec())));
            }
        }
    }

    /// `x-kubernetes-list-type: map`: items are objects, unique by their keys (each duplicate
    /// reported once, at its second occurrence, in Go's notation of the key as upstream).
    fn list_map(&mut self, items: &[Value], keys: &[String], path: &str) {
        if let Some((i, item)) = items
            .iter()
            .enumerate()
            .find(|(_, x)| !x.is_object() && !x.is_null())
        {
            self.invalid(
                &format!("{path}[{i}]"),
                item,
                "must be an object for an array of list-type map".into(),
            );
            return;
        }
        let key_of = |item: &Value| -> Vec<(String, Value)> {
            keys.iter()
                .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
                .collect()
        };
        let all: Vec<Vec<(String, Value)>> = items.iter().map(key_of).collect();
        for (i, key) in all.iter().enumerate() {
            if all[..i].iter().filter(|k| *k == key).count() == 1 {
                self.causes.push(Cause::new(
                    "FieldValueDuplicate",
                    &field(&format!("{path}[{i}]")),
                    format!("Duplicate value: {}", go_map(key)),
                ));
            }
        }
    }

    fn string(&mut self, s: &str, value: &Value, schema: &Schema, path: &str) {
        let len = s.chars().count() as u64;
        if let Some(max) = schema.max_length
            && len > max
        {
            self.causes.push(Cause::new(
                "FieldValueTooLong",
                &field(path),
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
        if let Some(min) = schema.min_length
            && len < min
        {
            self.invalid(
                path,
                value,
                format!("{} in body should be at least {min} chars long", shown(path)),
            );
        }
        if let Some((text, re)) = &schema.pattern
            && !re.is_match(s)
        {
            self.invalid(
                path,
                value,
                format!("{} in body should match '{text}'", shown(path)),
            );
        }
        if let Some(format) = schema.format.as_deref()
            && !format_ok(format, s)
        {
            self.invalid(
                path,
                value,
                format!("{} in body must be of type {format}: {s:?}", shown(path)),
            );
        }
    }

    fn number(&mut self, f: f64, value: &Value, schema: &Schema, path: &str) {
        if let Some(max) = schema.maximum {
            if schema.exclusive_maximum && f >= max {
                self.invalid(
                    path,
                    value,
                    format!("{} in body should be less than {}", shown(path), number_text(max)),
                );
            } else if f > max {
                self.invalid(
                    path,
                    value,
                    format!(
                        "{} in body should be less than or equal to {}",
                        shown(path),
                        number_text(max)
                    ),
                );
            }
        }
        if let Some(min) = schema.minimum {
            if schema.exclusive_minimum && f <= min {
                self.invalid(
                    path,
                    value,
                    format!(
                        "{} in body should be greater than {}",
                        shown(path),
                        number_text(min)
                    ),
                );
            } else if f < min {
                self.invalid(
                    path,
                    value,
                    format!(
                        "{} in body should be greater than or equal to {}",
                        shown(path),
                        number_text(min)
                    ),
                );
            }
        }
        if let Some(m) = schema.multiple_of
            && m > 0.0
            && (f / m).fract() != 0.0
        {
            self.invalid(
                path,
                value,
                format!(
                    "{} in body should be a multiple of {}",
                    shown(path),
                    number_text(m)
                ),
            );
        }
    }
}

/// A list-map key as Go's `%#v` prints a `map[string]interface {}` (keys sorted).
fn go_map(entries: &[(String, Value)]) -> String {
    let mut sorted: Vec<&(String, Value)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let shown: Vec<String> = sorted
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => format!("{s:?}"),
                other => other.to_string(),
            };
            format!("{k:?}:{value}")
        })
        .collect();
    format!("map[string]interface {{}}{{{}}}", shown.join(", "))
}

/// Whether a value passes a schema (for anyOf / oneOf / not).
fn passes(value: &Value, schema: &Schema, path: &str) -> bool {
    let mut causes = Vec::new();
    Validator { causes: &mut causes }.node(value, schema, path, false);
    causes.is_empty()
}

/// The string formats upstream checks; unknown formats pass (as upstream strips them).
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "byte" => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        "date-time" | "datetime" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.parse::<jiff::civil::Date>().is_ok() && s.len() == 10,
        "uuid" => uuid::Uuid::parse_str(s).is_ok() && s.len() == 36,
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s
            .split_once('/')
            .is_some_and(|(ip, bits)| ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok()),
        "hostname" => {
            !s.is_empty()
                && s.len() <= 255
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::parse(&json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "minLength": 2, "pattern": "^[a-z]+$"},
                        "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    }
                },
                "status": {"type": "object", "properties": {"ready": {"type": "integer"}}}
            }
        }))
        .unwrap()
    }

    fn messages(obj: Value) -> Vec<String> {
        validate(&obj, &schema())
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn type_errors_read_like_upstream() {
        assert_eq!(
            messages(json!({"spec": {"image": "ab", "replicas": "x"}})),
            [
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
            ]
        );
        assert_eq!(messages(json!({"spec": {}})), ["spec.image: Required value"]);
        assert_eq!(
            messages(json!({"spec": {"image": "ab", "mode": "c"}})),
            [r#"spec.mode: Unsupported value: "c": supported values: "a", "b""#]
        );
        assert_eq!(
            messages(json!({"spec": {"image": "ab", "replicas": 11}})),
            ["spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"]
        );
        assert_eq!(
            messages(json!({"spec": {"image": "AB"}})),
            [r#"spec.image: Invalid value: "AB": spec.image in body should match '^[a-z]+$'"#]
        );
        assert_eq!(
            messages(json!({"spec": {"image": "ab", "tags": ["a", "b", "c"]}})),
            ["spec.tags: Too many: 3: must have at most 2 items"]
        );
        assert!(messages(json!({"spec": {"image": "ab", "port": 80}})).is_empty());
        let mut with_null = json!({"spec": {"image": "ab", "mode": null, "replicas": null}});
        default(&mut with_null, &schema());
        assert_eq!(
            with_null,
            json!({"spec": {"image": "ab", "replicas": 1}}),
            "nulls dropped or defaulted"
        );
        let set = Schema::parse(
            &json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}),
        )
        .unwrap();
        let causes = validate(&json!(["a", "b", "a", "a"]), &set);
        assert_eq!(causes.len(), 1);
        assert_eq!(
            (causes[0].field.as_str(), causes[0].message.as_str()),
            ("[2]", "Duplicate value: \"a\"")
        );
        let map = Schema::parse(&json!({"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["containerPort", "protocol"], "items": {"type": "object"}}))
        .unwrap();
        let ports = json!([
            {"containerPort": 80, "protocol": "TCP", "name": "a"},
            {"containerPort": 80, "protocol": "UDP"},
            {"containerPort": 80, "protocol": "TCP", "name": "b"},
        ]);
        let causes = validate(&ports, &map);
        assert_eq!(causes.len(), 1);
        assert_eq!(
            (causes[0].field.as_str(), causes[0].message.as_str()),
            (
                "[2]",
                r#"Duplicate value: map[string]interface {}{"containerPort":80, "protocol":"TCP"}"#
            )
        );
        assert!(messages(json!({"spec": {"image": "ab", "port": "http"}})).is_empty());
        assert_eq!(
            messages(json!({"spec": {"image": "ab", "labels": {"a": 1}}})).len(),
            1
        );
    }

    #[test]
    fn embedded_resources_name_their_type() {
        let schema = Schema::parse(&json!({"type": "object", "properties": {"template": {
            "type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}}))
        .unwrap();
        let causes: Vec<String> = validate(&json!({"template": {"kind": ""}}), &schema)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            causes,
            [
                "template.apiVersion: Required value: must not be empty",
                "template.kind: Invalid value: \"\": must not be empty"
            ]
        );
        let mut obj = json!({"metadata": {"name": "a", "unknownMeta": 1},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "unknownSubMeta": 1}, "spec": {}}});
        assert_eq!(
            prune(&mut obj, &schema),
            ["metadata.unknownMeta", "template.metadata.unknownSubMeta"]
        );
        assert_eq!(
            obj,
            json!({"metadata": {"name": "a"}, "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {}}})
        );
    }

    #[test]
    fn pruning_drops_undeclared_fields_and_defaults_fill_in() {
        let mut obj = json!({
            "apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a", "extra": 1},
            "spec": {"image": "ab", "unknown": 1, "free": {"any": {"thing": 1}}, "labels": {"k": "v"}},
            "other": true
        });
        prune(&mut obj, &schema());
        default(&mut obj, &schema());
        assert_eq!(
            obj,
            json!({
                "apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
                "spec": {"image": "ab", "replicas": 1, "free": {"any": {"thing": 1}}, "labels": {"k": "v"}}
            })
        );
    }
}
