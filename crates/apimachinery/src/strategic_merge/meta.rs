//! Where the patch metadata of a field comes from: the protobuf schema table of built-in types
//! (upstream reads the same markers from its Go struct tags).

use crate::protobuf::schema::{self, Kind};

use super::{Error, Result};

/// The type a value in the object has, as far as merging cares (upstream's reflect.Type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Schema {
    /// A message with known fields.
    Struct(&'static str),
    /// A Go map (labels, `data`, …): upstream cannot look fields up in it.
    Map,
    /// A scalar or a type with its own JSON form (Quantity, Time, IntOrString): named by the Go
    /// kind upstream prints in errors.
    Scalar(&'static str),
    /// Not in the schema (unknown fields, raw JSON): merged like a JSON merge patch, whose lists
    /// are replaced.
    Unknown,
}

/// How a field's value is patched: its strategy without `retainKeys` (which only the client
/// uses, to compute `$retainKeys`) and its merge key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct FieldMeta {
    pub strategy: &'static str,
    pub merge_key: &'static str,
}

impl Schema {
    /// Upstream's `LookupPatchMetadataForStruct`: the type of field `key` and how it merges.
    pub fn lookup_struct(self, key: &str) -> Result<(Schema, FieldMeta)> {
        self.lookup(key)
    }

    /// Upstream's `LookupPatchMetadataForSlice`: the element type of list field `key` (for a
    /// field that is no list, its own type, as upstream does for Go pointers).
    pub fn lookup_slice(self, key: &str) -> Result<(Schema, FieldMeta)> {
        self.lookup_struct(key)
    }

    /// The Go kind upstream names this type by in errors (`reflect.Kind.String()`).
    pub fn go_kind(self) -> &'static str {
        match self {
            Schema::Struct(_) | Schema::Unknown => "struct",
            Schema::Map => "map",
            Schema::Scalar(kind) => kind,
        }
    }

    fn lookup(self, key: &str) -> Result<(Schema, FieldMeta)> {
        let message = match self {
            Schema::Struct(message) => message,
            Schema::Unknown => return Ok((Schema::Unknown, FieldMeta::default())),
            Schema::Map | Schema::Scalar(_) => {
                return Err(Error::unknown(format!(
                    "merging an object in json but data type is not struct, instead is: {}",
                    self.go_kind()
                )));
            }
        };
        // Go's JSON field lookup: an exact match first, else a case-insensitive one.
        let found = find_field(message, |json| json == key)
            .or_else(|| find_field(message, |json| json.eq_ignore_ascii_case(key)));
        let Some((owner, field)) = found else {
            // Unknown to the schema: patched like a merge patch rather than rejected.
            return Ok((Schema::Unknown, FieldMeta::default()));
        };
        let meta = patch_meta_of(owner, field.json)
            .map(|m| FieldMeta {
                strategy: m.strategy,
                merge_key: m.merge_key,
            })
            .unwrap_or_default();
        Ok((schema_of(field.kind), meta))
    }
}

/// The schema of the top-level message of a kind, if it is built in.
pub(super) fn for_kind(api_version: &str, kind: &str) -> Option<Schema> {
    schema::for_kind(api_version, kind).map(Schema::Struct)
}

/// A field by JSON name, looking into inlined (embedded) messages as Go's JSON does; returns
/// the message that declares it.
fn find_field(
    message: &'static str,
    matches: impl Fn(&str) -> bool + Copy,
) -> Option<(&'static str, &'static schema::Field)> {
    let fields = fields_of(message)?;
    if let Some(field) = fields.iter().find(|f| !f.json.is_empty() && matches(f.json)) {
        return Some((message, field));
    }
    fields.iter().find_map(|f| match f.kind {
        Kind::Inline(inner) => find_field(inner, matches),
        _ => None,
    })
}

/// The fields of a message (tests add upstream's test types, `test.*`).
fn fields_of(message: &str) -> Option<&'static [schema::Field]> {
    #[cfg(test)]
    if let Some(fields) = super::tests::fixture_fields(message) {
        return Some(fields);
    }
    schema::fields(message)
}

fn patch_meta_of(message: &str, json: &str) -> Option<&'static schema::PatchMeta> {
    #[cfg(test)]
    if message.starts_with("test.") {
        return super::tests::fixture_patch_meta(message, json);
    }
    schema::patch_meta(message, json)
}

fn schema_of(kind: Kind) -> Schema {
    match kind {
        Kind::String => Schema::Scalar("string"),
        Kind::Bytes => Schema::Scalar("slice"),
        Kind::Bool => Schema::Scalar("bool"),
        Kind::Int32 => Schema::Scalar("int32"),
        Kind::Int64 => Schema::Scalar("int64"),
        Kind::Double => Schema::Scalar("float64"),
        Kind::StringMap | Kind::BytesMap | Kind::MessageMap(_) => Schema::Map,
        Kind::Message(m) | Kind::Inline(m) => match fields_of(m) {
            Some(_) => Schema::Struct(m),
            // Types with a JSON form of their own: raw JSON (RawExtension, JSON) merges like a
            // merge patch; the rest (Time, Quantity, IntOrString) are scalars in JSON.
            None => Schema::Unknown,
        },
    }
}
