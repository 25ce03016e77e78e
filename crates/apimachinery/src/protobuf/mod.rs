//! Kubernetes protobuf request bodies, decoded into the JSON the rest of the server handles.
//!
//! client-go ≥ 0.32 (kubectl ≥ 1.32) sends built-in kinds as `application/vnd.kubernetes.protobuf`:
//! the 4-byte magic `k8s\0`, then a `runtime.Unknown` message whose `typeMeta` names the kind and
//! whose `raw` holds the object's own message. Messages are decoded generically from a schema
//! table (field number → JSON name and type, see `schema`); a few upstream types have a JSON form
//! of their own (`Time` → RFC 3339, `IntOrString`, `Quantity`, raw JSON of `RawExtension`,
//! `FieldsV1` and CRDs' `JSON`, `ExtraValue` lists) and are special-cased here. Not yet: the union
//! types of CRD schemas (`JSONSchemaPropsOr…`), which decode as plain objects.
//!
//! Kinds the schema does not know are refused with a clear message (clients can send JSON).

pub mod schema;
#[rustfmt::skip]
mod schema_generated;
mod wire;

use serde_json::{Map, Value};

use schema::{Field, Kind};
use wire::{Reader, WireValue};

/// Why a protobuf body could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the Kubernetes magic number")]
    NoMagic,
    #[error("malformed protobuf: {0}")]
    Malformed(String),
    #[error("protobuf encoding of {api_version}/{kind} is not supported yet; send it as JSON")]
    Unsupported { api_version: String, kind: String },
}

/// Decodes a Kubernetes protobuf object (magic + `runtime.Unknown`) into its JSON form.
pub fn decode_object(body: &[u8]) -> Result<Value, ProtobufError> {
    let payload = body.strip_prefix(b"k8s\0").ok_or(ProtobufError::NoMagic)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for field in Reader::new(payload) {
        match field? {
            (1, WireValue::Bytes(type_meta)) => {
                for tm in Reader::new(type_meta) {
                    match tm? {
                        (1, WireValue::Bytes(v)) => api_version = utf8(v)?,
                        (2, WireValue::Bytes(v)) => kind = utf8(v)?,
                        _ => {}
                    }
                }
            }
            (2, WireValue::Bytes(bytes)) => raw = bytes,
            _ => {}
        }
    }
    let message = schema::for_kind(&api_version, &kind).ok_or_else(|| ProtobufError::Unsupported {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let mut obj = decode_message(message, raw, 0)?;
    if let Value::Object(map) = &mut obj {
        map.insert("apiVersion".into(), api_version.into());
        map.insert("kind".into(), kind.into());
    }
    Ok(obj)
}

fn utf8(bytes: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtobufError::Malformed("a string is not UTF-8".into()))
}

fn malformed(what: &str) -> ProtobufError {
    ProtobufError::Malformed(what.to_owned())
}

/// How deep messages may nest. Some are recursive (a CRD's `JSONSchemaProps`), and a few
/// bytes per level would otherwise let a body recurse deeper than any stack; no object a JSON
/// body can carry (serde_json stops at 128 levels) nests its messages this deep.
const MAX_NESTING: usize = 100;

/// Decodes one message by name into its JSON form (`depth`: how many messages enclose it).
fn decode_message(name: &str, bytes: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    if depth > MAX_NESTING {
        return Err(malformed(&format!(
            "messages nest deeper than {MAX_NESTING} levels"
        )));
    }
    if let Some(special) = special(name, bytes, depth)? {
        return Ok(special);
    }
    let fields = schema::fields(name).ok_or_else(|| malformed(&format!("no schema for message {name}")))?;
    let mut out = Map::new();
    for item in Reader::new(bytes) {
        let (tag, value) = item?;
        // Fields the schema does not know (newer than it) are skipped.
        let Some(field) = fields.iter().find(|f| f.tag == tag) else {
            continue;
        };
        let decoded = decode_value(field, value, depth + 1)?;
        match (&field.kind, field.repeated) {
            (Kind::Inline(_), _) => {
                if let Value::Object(inner) = decoded.1 {
                    out.extend(inner);
                }
            }
            (Kind::StringMap | Kind::BytesMap | Kind::MessageMap(_), _) => {
                let (key, value) = decoded;
                let map = out.entry(field.json).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    map.insert(key.unwrap_or_default(), value);
                }
            }
            (_, true) => {
                let list = out.entry(field.json).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = list {
                    list.push(decoded.1);
                }
            }
            (_, false) => {
                out.insert(field.json.to_owned(), decoded.1);
            }
        }
    }
    // Go's JSON leaves these out at their zero value; protobuf carried them regardless.
    for tag in schema::omit_zero(name) {
        if let Some(field) = fields.iter().find(|f| f.tag == *tag && !f.repeated)
            && out.get(field.json).is_some_and(is_zero)
        {
            out.remove(field.json);
        }
    }
    Ok(Value::Object(out))
}

/// Go's zero value of a scalar: `""`, `0`, `false`.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// One field's value; for map entries also the key.
fn decode_value(
    field: &Field,
    value: WireValue<'_>,
    depth: usize,
) -> Result<(Option<String>, Value), ProtobufError> {
    let bad = || malformed(&format!("field {} has the wrong wire type", field.json));
    Ok(match (&field.kind, value) {
        (Kind::String, WireValue::Bytes(b)) => (None, utf8(b)?.into()),
        (Kind::Bytes, WireValue::Bytes(b)) => (None, base64(b).into()),
        (Kind::Bool, WireValue::Varint(v)) => (None, (v != 0).into()),
        (Kind::Double, WireValue::Fixed64(v)) => (None, f64::from_bits(v).into()),
        (Kind::Int32, WireValue::Varint(v)) => (None, (v as i64 as i32).into()),
        (Kind::Int64, WireValue::Varint(v)) => (None, (v as i64).into()),
        (Kind::Message(name) | Kind::Inline(name), WireValue::Bytes(b)) => {
            (None, decode_message(name, b, depth)?)
        }
        (Kind::StringMap | Kind::BytesMap | Kind::MessageMap(_), WireValue::Bytes(entry)) => {
            let (mut key, mut value) = (None, Value::Null);
            for part in Reader::new(entry) {
                match (part?, &field.kind) {
                    ((1, WireValue::Bytes(k)), _) => key = Some(utf8(k)?),
                    ((2, WireValue::Bytes(v)), Kind::StringMap) => value = utf8(v)?.into(),
                    ((2, WireValue::Bytes(v)), Kind::BytesMap) => value = base64(v).into(),
                    ((2, WireValue::Bytes(v)), Kind::MessageMap(name)) => {
                        value = decode_message(name, v, depth)?
                    }
                    _ => {}
                }
            }
            if value.is_null() {
                // An entry without a value is the type's empty value.
                value = match &field.kind {
                    Kind::MessageMap(_) => Value::Object(Map::new()),
                    _ => Value::String(String::new()),
                };
            }
            (key, value)
        }
        _ => return Err(bad()),
    })
}

/// Upstream types whose JSON form is not the plain object of their fields.
fn special(name: &str, bytes: &[u8], depth: usize) -> Result<Option<Value>, ProtobufError> {
    Ok(Some(match name {
        "meta.v1.Time" | "meta.v1.MicroTime" => {
            let (mut seconds, mut nanos) = (0i64, 0i32);
            for item in Reader::new(bytes) {
                match item? {
                    (1, WireValue::Varint(v)) => seconds = v as i64,
                    (2, WireValue::Varint(v)) => nanos = v as i64 as i32,
                    _ => {}
                }
            }
            // Go encodes an unset time as no bytes at all (metav1.Time.Marshal), or else as its
            // zero time, 0001-01-01; its JSON form is null.
            if bytes.is_empty() || (seconds == GO_ZERO_TIME_SECONDS && nanos == 0) {
                Value::Null
            } else {
                Value::String(rfc3339(seconds, nanos, name == "meta.v1.MicroTime")?)
            }
        }
        // Go `[]string` types wrapped in a message for protobuf: their JSON form is the list.
        "authentication.v1.ExtraValue" | "authorization.v1.ExtraValue" => {
            let mut items = Vec::new();
            for item in Reader::new(bytes) {
                if let (1, WireValue::Bytes(b)) = item? {
                    items.push(Value::String(utf8(b)?));
                }
            }
            Value::Array(items)
        }
        "meta.v1.FieldsV1" | "runtime.RawExtension" | "apiextensions.v1.Json" => {
            let mut raw: &[u8] = &[];
            for item in Reader::new(bytes) {
                if let (1, WireValue::Bytes(b)) = item? {
                    raw = b;
                }
            }
            if raw.is_empty() {
                Value::Object(Map::new())
            } else {
                serde_json::from_slice(raw).map_err(|e| malformed(&format!("embedded JSON: {e}")))?
            }
        }
        "intstr.IntOrString" => {
            let (mut is_string, mut int, mut string) = (false, 0i64, String::new());
            for item in Reader::new(bytes) {
                match item? {
                    (1, WireValue::Varint(t)) => is_string = t == 1,
                    (2, WireValue::Varint(v)) => int = v as i64 as i32 as i64,
                    (3, WireValue::Bytes(s)) => string = utf8(s)?,
                    _ => {}
                }
            }
            if is_string {
                Value::String(string)
            } else {
                Value::from(int)
            }
        }
        // CRD schemas: unions whose JSON form is one of their members (upstream's MarshalJSON).
        _ if name.starts_with("apiextensions.") && name.contains(".JsonSchemaPropsOr") => {
            let props = name.replace(name.rsplit('.').next().unwrap_or_default(), "JsonSchemaProps");
            let (mut schema, mut list, mut allows) = (None, Vec::new(), false);
            for item in Reader::new(bytes) {
                match (name.ends_with("OrArray"), name.ends_with("OrBool"), item?) {
                    // OrArray: 1 schema, 2 schemas; OrBool: 1 allows, 2 schema;
                    // OrStringArray: 1 schema, 2 strings.
                    (true, _, (1, WireValue::Bytes(b))) => {
                        schema = Some(decode_message(&props, b, depth + 1)?)
                    }
                    (true, _, (2, WireValue::Bytes(b))) => list.push(decode_message(&props, b, depth + 1)?),
                    (_, true, (1, WireValue::Varint(v))) => allows = v != 0,
                    (_, true, (2, WireValue::Bytes(b))) => {
                        schema = Some(decode_message(&props, b, depth + 1)?)
                    }
                    (false, false, (1, WireValue::Bytes(b))) => {
                        schema = Some(decode_message(&props, b, depth + 1)?)
                    }
                    (false, false, (2, WireValue::Bytes(b))) => list.push(Value::String(utf8(b)?)),
                    _ => {}
                }
            }
            match (schema, name.ends_with("OrBool")) {
                (Some(schema), _) if list.is_empty() => schema,
                (None, true) => Value::Bool(allows),
                _ => Value::Array(list),
            }
        }
        "resource.Quantity" => {
            let mut s = String::new();
            for item in Reader::new(bytes) {
                if let (1, WireValue::Bytes(b)) = item? {
                    s = utf8(b)?;
                }
            }
            Value::String(s)
        }
        _ => return Ok(None),
    }))
}

/// Unix seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z).
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// RFC 3339 in UTC as Kubernetes prints `Time` (seconds) and `MicroTime` (microseconds).
fn rfc3339(seconds: i64, nanos: i32, micro: bool) -> Result<String, ProtobufError> {
    let ts = jiff::Timestamp::new(seconds, nanos).map_err(|e| malformed(&format!("timestamp: {e}")))?;
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(ts.strftime(format).to_string())
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests;
