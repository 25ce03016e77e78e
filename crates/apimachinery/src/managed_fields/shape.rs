//! The shape of a value for field ownership: which parts are owned as a whole (leaves), which
//! are structs and maps owned field by field, and how list items are identified — upstream's
//! structured-merge-diff schema, derived here from the protobuf schema table and the patch
//! markers (`+listType`, `+listMapKey`, `+mapType`, and `patchStrategy`/`patchMergeKey` where
//! no list type is given, as upstream's conversion does).

use crate::protobuf::schema::{self, Field, Kind};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Owned as a whole: scalars, atomic lists and maps, special types (Quantity, Time, …).
    Leaf,
    /// A message: owned field by field.
    Struct(&'static str),
    /// A map owned key by key, values of the given shape.
    Map(Box<Shape>),
    List(ListKind, Box<Shape>),
    /// No schema (custom resources without one, unknown fields): objects are owned key by
    /// key, lists as a whole.
    Untyped,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListKind {
    Atomic,
    /// Items are unique scalars, owned one by one (`v:"x"`).
    Set,
    /// Items are objects identified by these key fields (`k:{"name":"c"}`).
    Map(Vec<&'static str>),
}

/// The shape of a built-in kind, if it is one.
pub fn for_kind(api_version: &str, kind: &str) -> Shape {
    match schema::for_kind(api_version, kind) {
        Some(message) => Shape::Struct(message),
        None => Shape::Untyped,
    }
}

impl Shape {
    /// The shape of a child: a struct's field or a map's value (`key` is the field name).
    pub fn child(&self, key: &str) -> Shape {
        match self {
            Shape::Struct(message) => field(message, key).unwrap_or(Shape::Untyped),
            Shape::Map(value) => (**value).clone(),
            Shape::Untyped => Shape::Untyped,
            Shape::Leaf | Shape::List(..) => Shape::Leaf,
        }
    }
}

/// A field of a message (looking through embedded structs).
fn field(message: &'static str, json: &str) -> Option<Shape> {
    let (owner, field) = find(message, json)?;
    let meta = schema::patch_meta(owner, json);
    let list_type = meta.map(|m| m.list_type).unwrap_or("");
    let strategy = meta.map(|m| m.strategy).unwrap_or("");
    let merge_key = meta.map(|m| m.merge_key).unwrap_or("");
    let element = match field.kind {
        Kind::Message(m) if schema::fields(m).is_some() && !schema::is_atomic_struct(m) => Shape::Struct(m),
        _ => Shape::Leaf,
    };
    let scalar = !matches!(field.kind, Kind::Message(_));
    if field.repeated {
        let kind = match list_type {
            "atomic" => ListKind::Atomic,
            "set" => ListKind::Set,
            "map" => {
                let keys = meta.map(|m| m.map_keys.to_vec()).unwrap_or_default();
                ListKind::Map(if keys.is_empty() { vec![merge_key] } else { keys })
            }
            _ if strategy.contains("merge") && !merge_key.is_empty() => ListKind::Map(vec![merge_key]),
            _ if strategy.contains("merge") => ListKind::Set,
            _ => ListKind::Atomic,
        };
        // Items without identity (no key given, or scalars) can only be owned as one list.
        let kind = match kind {
            ListKind::Map(keys) if keys.contains(&"") || scalar => ListKind::Atomic,
            other => other,
        };
        return Some(Shape::List(kind, Box::new(element)));
    }
    let map_type = meta.map(|m| m.map_type).unwrap_or("");
    Some(match field.kind {
        Kind::StringMap | Kind::BytesMap if map_type == "atomic" => Shape::Leaf,
        Kind::StringMap | Kind::BytesMap => Shape::Map(Box::new(Shape::Leaf)),
        Kind::MessageMap(m) => Shape::Map(Box::new(match schema::fields(m) {
            Some(_) => Shape::Struct(m),
            None => Shape::Leaf,
        })),
        Kind::Message(_) if map_type == "atomic" => Shape::Leaf,
        _ => element,
    })
}

/// The message declaring `json` (itself or a struct it embeds) and the field.
fn find(message: &'static str, json: &str) -> Option<(&'static str, &'static Field)> {
    let fields = schema::fields(message)?;
    if let Some(f) = fields.iter().find(|f| f.json == json) {
        return Some((message, f));
    }
    fields.iter().find_map(|f| match f.kind {
        Kind::Inline(embedded) => find(embedded, json),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_upstream_markers() {
        let pod = for_kind("v1", "Pod");
        let spec = pod.child("spec");
        assert_eq!(spec, Shape::Struct("core.v1.PodSpec"));
        assert_eq!(
            spec.child("containers"),
            Shape::List(
                ListKind::Map(vec!["name"]),
                Box::new(Shape::Struct("core.v1.Container"))
            )
        );
        let container = Shape::Struct("core.v1.Container");
        assert_eq!(
            container.child("args"),
            Shape::List(ListKind::Atomic, Box::new(Shape::Leaf))
        );
        assert_eq!(
            container.child("ports"),
            Shape::List(
                ListKind::Map(vec!["containerPort", "protocol"]),
                Box::new(Shape::Struct("core.v1.ContainerPort"))
            )
        );
        assert_eq!(container.child("image"), Shape::Leaf);
        let meta = pod.child("metadata");
        assert_eq!(meta.child("labels"), Shape::Map(Box::new(Shape::Leaf)));
        assert_eq!(
            meta.child("finalizers"),
            Shape::List(ListKind::Set, Box::new(Shape::Leaf))
        );
        assert_eq!(spec.child("nodeSelector"), Shape::Leaf, "atomic map");
        // Atomic structs are owned whole, also as items of associative lists.
        let deployment_spec = for_kind("apps/v1", "Deployment").child("spec");
        assert_eq!(deployment_spec.child("selector"), Shape::Leaf);
        assert_eq!(
            meta.child("ownerReferences"),
            Shape::List(ListKind::Map(vec!["uid"]), Box::new(Shape::Leaf))
        );
        // Embedded structs: the probe's handler fields are the probe's.
        let probe = Shape::Struct("core.v1.Probe");
        assert_eq!(
            probe.child("httpGet"),
            Shape::Struct("core.v1.HTTPGetAction").normalize_case()
        );
        // Quantities are leaves; unknown kinds are untyped.
        let resources = Shape::Struct("core.v1.ResourceRequirements");
        assert_eq!(resources.child("limits"), Shape::Map(Box::new(Shape::Leaf)));
        assert_eq!(for_kind("example.com/v1", "Widget"), Shape::Untyped);
    }

    impl Shape {
        /// Test helper: the table's spelling of a message name.
        fn normalize_case(self) -> Shape {
            match self {
                Shape::Struct(m) => Shape::Struct(
                    schema::message_names()
                        .find(|n| n.eq_ignore_ascii_case(m))
                        .unwrap_or(m),
                ),
                other => other,
            }
        }
    }
}
