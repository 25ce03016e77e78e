//! `x-kubernetes-validations`: CEL rules on any schema node, as apiextensions-apiserver's
//! schema/cel package evaluates them. Rules compile once with the schema (so once per CRD
//! version); on writes they run with `self` bound to the node's value and, for transition rules,
//! `oldSelf` bound to the correlated old value (object fields by name, `map` lists by their keys).
//! Failures read as upstream's field errors: `spec: Invalid value: "object": <message>`.

use std::time::{Duration, Instant};

use apimachinery::status::Cause;
use cel::Program;
use serde_json::Value;

use super::cel_library;
use super::rule_check;
use super::schema::{Additional, Schema};

/// Wall-clock bound of one object's rules: cel-rust has no cost accounting, and a rule over a large
/// list must not hold a request for long (upstream bounds the same with its cost budget).
const TIME_BUDGET: Duration = Duration::from_secs(1);

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    source: String,
    message: String,
    message_expression: Option<(String, Result<Program, String>)>,
    reason: Option<String>,
    field_path: Option<String>,
    optional_old_self: bool,
    program: Result<Program, String>,
    uses_old_self: bool,
    /// How deeply comprehensions nest: with the largest collection, bounds the work of a run.
    nesting: u32,
}

/// cel-go's issue text: ` | ` before the source line and the caret line.
fn compile_error(e: cel::ParseErrors) -> String {
    format!("compilation failed: {}", e.to_string().replace("\n| ", "\n | "))
}

impl Rule {
    /// Compiles one ValidationRule; a rule that does not compile keeps its error (a CRD with it is
    /// refused, see [`compile_errors`]).
    pub fn compile(v: &Value, node: &Schema) -> Rule {
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let source = text("rule");
        let env = cel_library::env();
        let checked = |source: &str, program: Program| match rule_check::check(&program, source, node) {
            Some(issue) => Err(format!("compilation failed: {issue}")),
            None => Ok(program),
        };
        let program = env
            .compile(&source)
            .map_err(compile_error)
            .and_then(|p| checked(&source, p));
        let nesting = program
            .as_ref()
            .map_or(0, |p| rule_check::comprehension_nesting(p.expression()));
        let uses_old_self = program
            .as_ref()
            .is_ok_and(|p| p.references().has_variable("oldSelf"));
        let message_expression = v
            .get("messageExpression")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                (
                    s.to_owned(),
                    env.compile(s)
                        .map_err(compile_error)
                        .and_then(|p| checked(s, p))
                        .map_err(|e| format!("messageExpression {e}")),
                )
            });
        Rule {
            message: text("message").trim().to_owned(),
            message_expression,
            reason: v.get("reason").and_then(Value::as_str).map(str::to_owned),
            field_path: v
                .get("fieldPath")
                .and_then(Value::as_str)
                .map(|p| {
                    normalized_field_path(p, node).unwrap_or_else(|| p.trim_start_matches('.').to_owned())
                })
                .filter(|p| !p.is_empty()),
            optional_old_self: v.get("optionalOldSelf") == Some(&Value::Bool(true)),
            program,
            uses_old_self,
            nesting,
            source,
        }
    }

    /// upstream's ruleErrorString: the message, else the rule.
    fn error_string(&self) -> &str {
        if self.message.is_empty() {
            self.source.trim()
        } else {
            &self.message
        }
    }

    /// upstream's ruleMessageOrDefault.
    fn message_or_default(&self) -> String {
        if self.message.is_empty() {
            format!("failed rule: {}", self.error_string())
        } else {
            self.message.clone()
        }
    }
}

/// A rule's `fieldPath` (`.spec.items`, `.labels['a.b']`) as the field path upstream reports:
/// properties joined by dots, map keys in brackets. None when it does not name a declared field.
fn normalized_field_path(path: &str, node: &Schema) -> Option<String> {
    let mut out = String::new();
    let mut schema = node;
    let mut rest = path;
    while !rest.is_empty() {
        let name = if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']")?;
            rest = &r[end + 2..];
            &r[..end]
        } else {
            let r = rest.strip_prefix('.')?;
            let end = r.find(['.', '[']).unwrap_or(r.len());
            rest = &r[end..];
            &r[..end]
        };
        if let Some(p) = schema.properties.get(name) {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(name);
            schema = p;
        } else if let Additional::Schema(a) = &schema.additional {
            out.push_str(&format!("[{name}]"));
            schema = a;
        } else {
            return None;
        }
    }
    Some(out)
}

/// The rules of a CRD schema that do not compile, as CRD validation causes under `path` (the
/// schema's own path, `spec.versions[0].schema.openAPIV3Schema`).
pub fn compile_errors(schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(rules) = schema.get("x-kubernetes-validations").and_then(Value::as_array) {
        for (i, raw) in rules.iter().enumerate() {
            let rule_path = format!("{path}.x-kubernetes-validations[{i}]");
            if raw
                .get("rule")
                .and_then(Value::as_str)
                .is_none_or(|r| r.trim().is_empty())
            {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    &format!("{rule_path}.rule"),
                    "Required value",
                ));
                continue;
            }
            let rule = match Schema::parse(schema) {
                Ok(node) => Rule::compile(raw, &node),
                Err(_) => continue,
            };
            let shown = go_rule_value(raw);
            if let Err(e) = &rule.program {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    &format!("{rule_path}.rule"),
                    format!("Invalid value: {shown}: {e}"),
                ));
            }
            if let Some((_, Err(e))) = &rule.message_expression {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    &format!("{rule_path}.messageExpression"),
                    format!("Invalid value: {shown}: {e}"),
                ));
            }
        }
    }
    let mut child = |s: &Value, p: String| compile_errors(s, &p, causes);
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            child(s, format!("{path}.properties[{k}]"));
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        child(items, format!("{path}.items"));
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        child(additional, format!("{path}.additionalProperties"));
    }
}

/// The ValidationRule as Go's `%#v` prints it in upstream's field error.
fn go_rule_value(raw: &Value) -> String {
    let text = |k: &str| {
        serde_json::to_string(raw.get(k).and_then(Value::as_str).unwrap_or_default()).unwrap_or_default()
    };
    let reason = match raw.get("reason").and_then(Value::as_str) {
        Some(r) => format!("\"{r}\""),
        None => "(*apiextensions.FieldValueErrorReason)(nil)".to_owned(),
    };
    let optional = match raw.get("optionalOldSelf").and_then(Value::as_bool) {
        Some(b) => format!("(*bool)({b})"),
        None => "(*bool)(nil)".to_owned(),
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional}}}",
        text("rule"),
        text("message"),
        text("messageExpression"),
        text("fieldPath"),
    )
}

/// Runs every rule of `schema` over `obj` (and, on updates, the correlated parts of `old`).
pub fn validate(obj: &Value, old: Option<&Value>, schema: &Schema) -> Vec<Cause> {
    let mut walker = Walker {
        causes: Vec::new(),
        deadline: Instant::now() + TIME_BUDGET,
        exhausted: false,
    };
    let unchanged = old == Some(obj);
    walker.node(obj, old, schema, None, true, unchanged);
    walker.causes
}

struct Walker {
    causes: Vec<Cause>,
    deadline: Instant,
    exhausted: bool,
}

fn child_path(parent: Option<&str>, key: &str) -> String {
    match parent {
        Some(p) => format!("{p}.{key}"),
        None => key.to_owned(),
    }
}

impl Walker {
    /// `unchanged`: the node (or, where it cannot be correlated, its nearest correlated ancestor)
    /// equals its old value; failures of rules that do not use oldSelf are then let through
    /// (upstream's ratcheting).
    fn node(
        &mut self,
        value: &Value,
        old: Option<&Value>,
        schema: &Schema,
        path: Option<&str>,
        root: bool,
        unchanged: bool,
    ) {
        if value.is_null() || self.exhausted {
            return;
        }
        if !schema.rules.is_empty() {
            self.rules(value, old, schema, path, root, unchanged);
        }
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let sub = match (schema.properties.get(k), &schema.additional) {
                        (Some(sub), _) => sub,
                        (None, Additional::Schema(sub)) => sub,
                        _ => continue,
                    };
                    let old_v = old.and_then(|o| o.get(k));
                    let path = if schema.properties.contains_key(k) {
                        child_path(path, k)
                    } else {
                        format!("{}[{k}]", path.unwrap_or_default())
                    };
                    let same = old_v.map_or(unchanged, |o| o == v);
                    self.node(v, old_v, sub, Some(&path), false, same);
                }
            }
            Value::Array(items) => {
                let Some(item_schema) = &schema.items else { return };
                for (i, item) in items.iter().enumerate() {
                    let old_item = correlated_item(item, old, schema);
                    let same = old_item.map_or(unchanged, |o| o == item);
                    let path = format!("{}[{i}]", path.unwrap_or_default());
                    self.node(item, old_item, item_schema, Some(&path), false, same);
                }
            }
            _ => {}
        }
    }

    fn rules(
        &mut self,
        value: &Value,
        old: Option<&Value>,
        schema: &Schema,
        path: Option<&str>,
        root: bool,
        unchanged: bool,
    ) {
        let type_name = Value::from(schema.kind.clone().unwrap_or_default());
        let field = path.unwrap_or("<nil>");
        let this = to_cel(value, Some(schema), root);
        let old_this = old.map(|o| to_cel(o, Some(schema), root));
        for rule in &schema.rules {
            if Instant::now() > self.deadline {
                self.causes.push(Cause::invalid(
                    field,
                    &type_name,
                    "validation failed due to running out of cost budget, no further validation rules will be run",
                ));
                self.exhausted = true;
                return;
            }
            let program = match &rule.program {
                Ok(p) => p,
                Err(e) => {
                    self.causes.push(Cause::invalid(
                        field,
                        &type_name,
                        &format!("rule compile error: {e}"),
                    ));
                    continue;
                }
            };
            if rule.uses_old_self && old.is_none() && !rule.optional_old_self {
                continue;
            }
            let mut ctx = cel_library::context();
            ctx.add_variable_from_value("self", this.clone());
            match (&old_this, rule.optional_old_self) {
                (Some(o), false) => ctx.add_variable_from_value("oldSelf", o.clone()),
                (o, true) => ctx.add_variable_from_value(
                    "oldSelf",
                    cel::Value::Opaque(std::sync::Arc::new(match o {
                        Some(o) => cel::objects::OptionalValue::of(o.clone()),
                        None => cel::objects::OptionalValue::none(),
                    })),
                ),
                (None, false) => {}
            }
            if rule.nesting >= 2 && work_bound(value, old, rule.nesting) > MAX_NESTED_WORK {
                // cel-rust cannot stop a running program: refuse what could run for minutes.
                self.causes.push(Cause::invalid(
                    field,
                    &type_name,
                    &format!(
                        "'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: {}",
                        rule.error_string()
                    ),
                ));
                self.exhausted = true;
                return;
            }
            let detail = match program.execute(&ctx) {
                Ok(cel::Value::Bool(true)) => continue,
                Ok(_) => None,
                Err(e) => Some(runtime_error(&e, rule)),
            };
            if let Some(detail) = detail {
                self.causes.push(Cause::invalid(field, &type_name, &detail));
                continue;
            }
            if !rule.uses_old_self && unchanged {
                continue;
            }
            let field = match &rule.field_path {
                Some(p) => child_path(path, p),
                None => field.to_owned(),
            };
            let detail = rule
                .message_expression
                .as_ref()
                .and_then(|(_, p)| p.as_ref().ok())
                .and_then(|p| match p.execute(&ctx) {
                    Ok(cel::Value::String(s)) => {
                        let s = s.trim();
                        (!s.is_empty() && !s.contains('\n')).then(|| s.to_owned())
                    }
                    _ => None,
                })
                .unwrap_or_else(|| rule.message_or_default());
            self.causes.push(match rule.reason.as_deref() {
                Some("FieldValueForbidden") => Cause::forbidden(&field, &detail),
                Some("FieldValueRequired") => {
                    Cause::new("FieldValueRequired", &field, format!("Required value: {detail}"))
                }
                Some("FieldValueDuplicate") => Cause::duplicate(&field, &type_name),
                _ => Cause::invalid(&field, &type_name, &detail),
            });
        }
    }
}

/// The most iterations nested comprehensions may make (upstream's per-call cost limit is of the
/// same order).
const MAX_NESTED_WORK: u64 = 10_000_000;

/// The largest collection (list, map or string) in the values a rule sees, to the power of its
/// comprehension nesting: what nested loops over them could cost.
fn work_bound(value: &Value, old: Option<&Value>, nesting: u32) -> u64 {
    fn largest(v: &Value) -> usize {
        match v {
            Value::Array(items) => items.iter().map(largest).max().unwrap_or(0).max(items.len()),
            Value::Object(map) => map.values().map(largest).max().unwrap_or(0).max(map.len()),
            Value::String(s) => s.len(),
            _ => 0,
        }
    }
    let size = largest(value).max(old.map_or(0, largest)).max(1) as u64;
    size.saturating_pow(nesting)
}

/// The runtime error text upstream gives (cel-go's wording for the common errors).
fn runtime_error(e: &cel::ExecutionError, rule: &Rule) -> String {
    use cel::ExecutionError as E;
    let text = match e {
        E::NoSuchKey(k) => format!("no such key: {k}"),
        E::NoSuchOverload { .. } => {
            return format!(
                "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {}",
                rule.error_string()
            );
        }
        E::DivisionByZero(_) => "division by zero".to_owned(),
        E::RemainderByZero(_) => "modulus by zero".to_owned(),
        E::IndexOutOfBounds(i) => format!("index out of bounds: {}", cel_text(i)),
        E::Overflow(..) => "integer overflow".to_owned(),
        other => {
            let s = other.to_string();
            let mut chars = s.chars();
            chars
                .next()
                .map(|c| c.to_lowercase().chain(chars).collect())
                .unwrap_or_default()
        }
    };
    format!("{text} evaluating rule: {}", rule.error_string())
}

fn cel_text(v: &cel::Value) -> String {
    match v {
        cel::Value::Int(i) => i.to_string(),
        cel::Value::UInt(u) => u.to_string(),
        other => format!("{other:?}"),
    }
}

/// The old item a `map` list's item correlates with (same map keys); other lists do not
/// correlate, as upstream.
fn correlated_item<'a>(item: &Value, old: Option<&'a Value>, schema: &Schema) -> Option<&'a Value> {
    let keys = schema.list_map_keys.as_ref()?;
    old?.as_array()?
        .iter()
        .find(|o| keys.iter().all(|k| o.get(k) == item.get(k)))
}

/// A JSON value as the CEL value rules see, typed by the schema as upstream's UnstructuredToVal:
/// `number` fields are doubles, `date-time`/`duration`/`byte` strings become timestamps,
/// durations and bytes, and at the resource root `metadata` shows only name and generateName.
pub fn to_cel(v: &Value, schema: Option<&Schema>, root: bool) -> cel::Value {
    let kind = schema.and_then(|s| s.kind.as_deref());
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (kind, n.as_i64()) {
            (Some("number"), _) | (_, None) => cel::Value::Float(n.as_f64().unwrap_or_default()),
            (_, Some(i)) => cel::Value::Int(i),
        },
        Value::String(s) => string_to_cel(s, schema),
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.items.as_deref());
            cel::Value::List(std::sync::Arc::new(
                items.iter().map(|i| to_cel(i, item_schema, false)).collect(),
            ))
        }
        Value::Object(map) => {
            let mut out = std::collections::HashMap::new();
            for (k, val) in map {
                if root && k == "metadata" {
                    let mut meta = std::collections::HashMap::new();
                    for field in ["name", "generateName"] {
                        if let Some(s) = val.get(field).and_then(Value::as_str) {
                            meta.insert(field.to_owned(), cel::Value::from(s));
                        }
                    }
                    out.insert(k.clone(), cel::Value::from(meta));
                    continue;
                }
                let sub = schema.and_then(|s| match (s.properties.get(k), &s.additional) {
                    (Some(p), _) => Some(p),
                    (None, Additional::Schema(a)) => Some(a.as_ref()),
                    _ => None,
                });
                let declared = schema.is_some_and(|s| s.properties.contains_key(k));
                let converted = to_cel(val, sub, false);
                match declared.then(|| escaped_property(k)).flatten() {
                    Some(name) if name != *k => {
                        out.insert(name, converted.clone());
                        out.insert(k.clone(), converted);
                    }
                    _ => {
                        out.insert(k.clone(), converted);
                    }
                }
            }
            cel::Value::from(out)
        }
    }
}

/// CEL's reserved words: a property of that name is reached as `self.__name__`.
const RESERVED: [&str; 18] = [
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
    "in",
];

/// The name rules use for a declared property (upstream's escaping: `my-field` is
/// `my__dash__field`, `namespace` is `__namespace__`).
pub fn escaped_property(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let escaped = name
        .replace("__", "__underscores__")
        .replace('.', "__dot__")
        .replace('-', "__dash__")
        .replace('/', "__slash__");
    let mut chars = escaped.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(escaped)
}

fn string_to_cel(s: &str, schema: Option<&Schema>) -> cel::Value {
    let format = schema.and_then(|s| s.format.as_deref());
    let int_or_string = schema.is_some_and(|s| s.int_or_string);
    if !int_or_string {
        match format {
            Some("date-time") | Some("datetime") => {
                if let Ok(t) = converted(&TIMESTAMP, s) {
                    return t;
                }
            }
            Some("duration") => {
                if let Ok(d) = converted(&DURATION, s) {
                    return d;
                }
            }
            Some("byte") => {
                use base64::Engine;
                if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(s) {
                    return cel::Value::Bytes(std::sync::Arc::new(b));
                }
            }
            _ => {}
        }
    }
    cel::Value::from(s)
}

type Conversion = std::sync::LazyLock<Option<Program>>;
static TIMESTAMP: Conversion = Conversion::new(|| cel_library::env().compile("timestamp(t)").ok());
static DURATION: Conversion = Conversion::new(|| cel_library::env().compile("duration(t)").ok());

/// RFC 3339 timestamps and Go durations through CEL's own conversions.
fn converted(conversion: &Conversion, s: &str) -> Result<cel::Value, ()> {
    let program = conversion.as_ref().ok_or(())?;
    let mut ctx = cel::Context::with_env(cel_library::env());
    ctx.add_variable_from_value("t", s);
    program.execute(&ctx).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> Schema {
        Schema::parse(&v).unwrap()
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn crd_schema() -> Schema {
        schema(json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "x-kubernetes-validations": [
                        {"rule": "self.replicas <= self.maxReplicas", "message": "replicas must be <= maxReplicas"},
                        {"rule": "self.name.startsWith('a')", "messageExpression": "'name ' + self.name + ' must start with a'"},
                        {"rule": "self.mode == oldSelf.mode", "message": "mode is immutable", "fieldPath": ".mode"},
                        {"rule": "!has(self.forbidden)", "reason": "FieldValueForbidden", "message": "no"},
                    ],
                    "properties": {
                        "replicas": {"type": "integer"},
                        "maxReplicas": {"type": "integer"},
                        "name": {"type": "string"},
                        "mode": {"type": "string"},
                        "forbidden": {"type": "string"},
                        "ratio": {"type": "number", "x-kubernetes-validations": [{"rule": "self < 1.0"}]},
                        "tags": {
                            "type": "array",
                            "items": {"type": "string"},
                            "x-kubernetes-validations": [{"rule": "self.all(t, t.matches('^[a-z]+$'))", "message": "tags are lowercase"}],
                        },
                    },
                },
            },
            "x-kubernetes-validations": [{"rule": "self.metadata.name.size() < 10"}],
        }))
    }

    fn obj(spec: Value) -> Value {
        json!({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "ok", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn failures_read_like_upstream() {
        let s = crd_schema();
        let good = obj(
            json!({"replicas": 1, "maxReplicas": 2, "name": "abc", "mode": "x", "tags": ["a"], "ratio": 0.5}),
        );
        assert_eq!(messages(&validate(&good, None, &s)), Vec::<String>::new());
        let bad = obj(
            json!({"replicas": 3, "maxReplicas": 2, "name": "bob", "forbidden": "x", "tags": ["A"], "ratio": 2}),
        );
        assert_eq!(
            messages(&validate(&bad, None, &s)),
            vec![
                "spec: Invalid value: \"object\": replicas must be <= maxReplicas",
                "spec: Invalid value: \"object\": name bob must start with a",
                "spec: Forbidden: no",
                "spec.ratio: Invalid value: \"number\": failed rule: self < 1.0",
                "spec.tags: Invalid value: \"array\": tags are lowercase",
            ]
        );
        let mut long = good.clone();
        long["metadata"]["name"] = json!("much-too-long-name");
        assert_eq!(
            messages(&validate(&long, None, &s)),
            vec!["<nil>: Invalid value: \"object\": failed rule: self.metadata.name.size() < 10"]
        );
    }

    #[test]
    fn field_paths_name_properties_and_map_keys() {
        let s = schema(json!({
            "type": "object",
            "properties": {
                "a": {"type": "object", "properties": {"b.c": {"type": "string"}}},
                "m": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }));
        assert_eq!(normalized_field_path(".a['b.c']", &s).as_deref(), Some("a.b.c"));
        assert_eq!(normalized_field_path(".m['k']", &s).as_deref(), Some("m[k]"));
        assert_eq!(normalized_field_path(".nope", &s), None);
    }

    #[test]
    fn transition_rules_run_only_with_an_old_value() {
        let s = crd_schema();
        let old = obj(json!({"replicas": 1, "maxReplicas": 2, "name": "abc", "mode": "x"}));
        let mut new = old.clone();
        new["spec"]["mode"] = json!("y");
        assert!(validate(&new, None, &s).is_empty());
        assert_eq!(
            messages(&validate(&new, Some(&old), &s)),
            vec!["spec.mode: Invalid value: \"object\": mode is immutable"]
        );
    }

    #[test]
    fn optional_old_self_runs_on_create_too() {
        let s = schema(json!({
            "type": "object",
            "properties": {"n": {"type": "integer", "x-kubernetes-validations": [{
                "rule": "!oldSelf.hasValue() || self >= oldSelf.value()",
                "optionalOldSelf": true,
                "message": "n may only grow",
            }, {
                "rule": "oldSelf.orValue(0) < 100",
                "optionalOldSelf": true,
                "messageExpression": "42",
            }]}},
        }));
        assert!(validate(&json!({"n": 5}), None, &s).is_empty());
        assert!(validate(&json!({"n": 6}), Some(&json!({"n": 5})), &s).is_empty());
        assert_eq!(
            messages(&validate(&json!({"n": 4}), Some(&json!({"n": 5})), &s)),
            vec!["n: Invalid value: \"integer\": n may only grow"]
        );
        // A messageExpression that is not a string falls back to the default message.
        assert_eq!(
            messages(&validate(&json!({"n": 200}), Some(&json!({"n": 150})), &s)),
            vec!["n: Invalid value: \"integer\": failed rule: oldSelf.orValue(0) < 100"]
        );
    }

    #[test]
    fn nested_loops_over_large_lists_are_cut_off() {
        let s = schema(json!({
            "type": "object",
            "properties": {"l": {"type": "array", "items": {"type": "integer"}}},
            "x-kubernetes-validations": [
                {"rule": "self.l.all(a, self.l.all(b, self.l.all(c, a + b + c >= 0)))"},
                {"rule": "self.l.all(a, a >= 0)"},
            ],
        }));
        let small = json!({"l": (0..50).collect::<Vec<i64>>()});
        assert!(validate(&small, None, &s).is_empty());
        let large = json!({"l": (0..5000).collect::<Vec<i64>>()});
        let started = Instant::now();
        assert_eq!(
            messages(&validate(&large, None, &s)),
            vec![
                "<nil>: Invalid value: \"object\": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: self.l.all(a, self.l.all(b, self.l.all(c, a + b + c >= 0)))"
            ]
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn unchanged_values_ratchet_and_runtime_errors_are_reported() {
        let s = crd_schema();
        let old = obj(json!({"replicas": 3, "maxReplicas": 2, "name": "abc", "mode": "x"}));
        let mut new = old.clone();
        new["metadata"]["labels"] = json!({"a": "b"});
        assert!(validate(&new, Some(&old), &s).is_empty());
        // `self.replicas` is absent: cel-go's "no such key".
        let missing = obj(json!({"maxReplicas": 2, "name": "abc"}));
        assert_eq!(
            messages(&validate(&missing, None, &s))[0],
            "spec: Invalid value: \"object\": no such key: replicas evaluating rule: replicas must be <= maxReplicas"
        );
    }

    #[test]
    fn kubernetes_libraries() {
        let eval = |rule: &str, value: Value| {
            let s = schema(
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "x-kubernetes-validations": [{"rule": rule}]}),
            );
            let causes = validate(&value, None, &s);
            assert!(causes.is_empty(), "{rule}: {:?}", messages(&causes));
        };
        let v =
            json!({"s": "Hello World", "l": [1, 2, 3], "u": "https://example.com:8443/a?x=1", "q": "1Gi"});
        eval(
            "self.s.lowerAscii() == 'hello world' && self.s.upperAscii() == 'HELLO WORLD'",
            v.clone(),
        );
        eval(
            "self.s.split(' ') == ['Hello', 'World'] && self.s.replace('o', '0') == 'Hell0 W0rld'",
            v.clone(),
        );
        eval(
            "self.s.substring(0, 5) == 'Hello' && self.s.indexOf('World') == 6 && ['a','b'].join('-') == 'a-b'",
            v.clone(),
        );
        eval(
            "self.s.find('[A-Z]') == 'H' && self.s.findAll('o') == ['o', 'o'] && self.s.matches('^H')",
            v.clone(),
        );
        eval(
            "self.l.isSorted() && self.l.sum() == 6 && self.l.min() == 1 && self.l.max() == 3",
            v.clone(),
        );
        eval("self.l.indexOf(2) == 1 && self.l.lastIndexOf(5) == -1", v.clone());
        eval(
            "self.l.exists(x, x == 2) && self.l.exists_one(x, x > 2) && self.l.map(x, x * 2) == [2, 4, 6] && self.l.filter(x, x > 1).size() == 2",
            v.clone(),
        );
        eval(
            "isURL(self.u) && url(self.u).getHost() == 'example.com:8443' && url(self.u).getHostname() == 'example.com' && url(self.u).getPort() == '8443' && url(self.u).getEscapedPath() == '/a' && url(self.u).getScheme() == 'https'",
            v.clone(),
        );
        eval(
            "url(self.u).getQuery()['x'] == ['1'] && !isURL('not a url')",
            v.clone(),
        );
        eval(
            "isQuantity(self.q) && quantity(self.q).isGreaterThan(quantity('1Mi')) && quantity('2').asInteger() == 2 && quantity(self.q).compareTo(quantity('1024Mi')) == 0",
            v.clone(),
        );
        eval(
            "duration('1h') > duration('30m') && timestamp('2024-01-01T00:00:00Z') < timestamp('2025-01-01T00:00:00Z')",
            v.clone(),
        );
        eval("!has(self.missing) && has(self.s)", v.clone());
        let escaped = schema(json!({
            "type": "object",
            "properties": {"namespace": {"type": "string"}, "my-field": {"type": "string"}, "a.b": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "self.__namespace__ == 'n' && self.my__dash__field == 'f' && self.a__dot__b == 'd'"}],
        }));
        let value = json!({"namespace": "n", "my-field": "f", "a.b": "d"});
        assert_eq!(messages(&validate(&value, None, &escaped)), Vec::<String>::new());
        let typed = schema(json!({
            "type": "object",
            "properties": {
                "at": {"type": "string", "format": "date-time"},
                "every": {"type": "string", "format": "duration"},
                "port": {"x-kubernetes-int-or-string": true},
            },
            "x-kubernetes-validations": [
                {"rule": "self.at > timestamp('2020-01-01T00:00:00Z') && self.every < duration('1h')"},
                {"rule": "type(self.port) == string ? self.port.endsWith('%') : self.port < 100"},
            ],
        }));
        let ok = json!({"at": "2024-05-01T10:00:00Z", "every": "30m", "port": "50%"});
        assert_eq!(messages(&validate(&ok, None, &typed)), Vec::<String>::new());
        let bad = json!({"at": "2024-05-01T10:00:00Z", "every": "30m", "port": 200});
        assert_eq!(messages(&validate(&bad, None, &typed)).len(), 1);
    }

    #[test]
    fn undeclared_names_and_undefined_fields_do_not_compile() {
        let problem = |rule: &str| {
            let s = schema(json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "ports": {"type": "array", "items": {"type": "object", "properties": {"port": {"type": "integer"}}}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                },
                "x-kubernetes-validations": [{"rule": rule}],
            }));
            s.rules[0].program.as_ref().err().cloned()
        };
        for ok in [
            "self.name.size() > 0 && has(self.tags)",
            "self.tags.all(t, t.size() < 10) && self.ports.all(p, p.port > 0)",
            "self.ports.map(p, p.port).exists(x, x == 80)",
            "self.labels.all(k, self.labels[k] != '') && self.labels.x == 'y'",
            "self.extra.anything.goes && int('1') == 1 && type(self.name) == string",
            "strings.quote(self.name) != '' && self.metadata.name != ''",
        ] {
            assert_eq!(problem(ok), None, "{ok}");
        }
        assert_eq!(
            problem("self.nmae == 'x'").unwrap(),
            "compilation failed: ERROR: <input>:1:5: undefined field 'nmae'\n | self.nmae == 'x'\n | ....^"
        );
        assert_eq!(
            problem("self.ports.all(p, p.prot > 0)").unwrap(),
            "compilation failed: ERROR: <input>:1:20: undefined field 'prot'\n | self.ports.all(p, p.prot > 0)\n | ...................^"
        );
        assert_eq!(
            problem("foo == 1").unwrap(),
            "compilation failed: ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')\n | foo == 1\n | ^"
        );
    }

    #[test]
    fn compile_errors_name_the_rule() {
        let mut causes = Vec::new();
        compile_errors(
            &json!({"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": [{"rule": "self.x =="}]}}}),
            "spec.versions[0].schema.openAPIV3Schema",
            &mut causes,
        );
        assert_eq!(causes.len(), 1);
        assert_eq!(
            causes[0].field,
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
        );
        assert!(
            causes[0].message.starts_with("Invalid value: apiextensions.ValidationRule{Rule:\"self.x ==\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:"),
            "{}",
            causes[0].message
        );
    }
}
