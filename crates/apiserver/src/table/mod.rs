//! Server-side printing: `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` turns a get, a
//! list or each event of a watch into a `meta.k8s.io/v1` Table.
//!
//! The built-in kinds get the columns of upstream's printers (kube 1.33's
//! `pkg/printers/internalversion`), computed here from the untyped JSON object: one module per
//! area (`core`, `workloads`, `networking`, `cluster`), shared helpers in `format`. As upstream's
//! server does, rows always carry every cell, `-o wide` ones included (priority 1 columns);
//! kubectl hides those unless asked. Every other kind (Roles, CRDs, custom resources, …) gets
//! upstream's default columns, Name and Created At.
//!
//! `includeObject` picks what each row carries: `Metadata` (the default, a
//! PartialObjectMetadata), `Object` (the whole object) or `None`.

mod cluster;
mod core;
pub(crate) mod format;
mod networking;
mod workloads;

use apimachinery::resources::ResourceDef;
use apimachinery::status::ApiError;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::query::Query;
use crate::watch::EventStream;
use format::Ctx;

/// Whether the client asked for a Table (kubectl get does, with JSON as fallback).
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && params.iter().any(|p| p.starts_with("v=v1"))
    })
}

/// Checks the Table options of a request (upstream's `ValidateTableOptions`).
pub fn validate_options(query: &Query) -> Result<(), ApiError> {
    match query.get("includeObject") {
        None | Some("" | "Metadata" | "None" | "Object") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "Unable to convert to Table as requested: includeObject: Invalid value: {other:?}: must be 'Metadata', 'Object', 'None', or empty"
        ))),
    }
}

/// A Table of one object or of a list's items.
pub fn to_table(def: &ResourceDef, obj: &Value, query: &Query) -> Value {
    build(def, obj, include(query), true, &Ctx::now())
}

/// A watch's events with each object turned into a one-row Table. As upstream, only the first
/// event's Table carries the column definitions (kubectl reuses them for the rest); ERROR
/// events keep their Status.
pub fn watch_events(def: &'static ResourceDef, query: &Query, events: EventStream) -> EventStream {
    let include = include(query);
    let mut headers = true;
    events
        .map(move |line| {
            let Ok(mut event) = serde_json::from_slice::<Value>(&line) else {
                return line;
            };
            let with_headers = std::mem::replace(&mut headers, false);
            if event["object"]["kind"] == "Status" {
                return line;
            }
            event["object"] = build(def, &event["object"], include, with_headers, &Ctx::now());
            let mut bytes = serde_json::to_vec(&event).expect("JSON value");
            bytes.push(b'\n');
            bytes.into()
        })
        .boxed()
}

/// What each row carries besides its cells.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Include {
    Metadata,
    Object,
    None,
}

fn include(query: &Query) -> Include {
    match query.get("includeObject") {
        Some("Object") => Include::Object,
        Some("None") => Include::None,
        _ => Include::Metadata,
    }
}

fn build(def: &ResourceDef, obj: &Value, include: Include, headers: bool, ctx: &Ctx) -> Value {
    let printer = printer(def.group, def.kind);
    let columns = || printer.columns.iter().map(Column::to_json).collect();
    build_with(def, obj, include, headers, ctx, columns, &|item, ctx| {
        (printer.row)(item, ctx)
    })
}

/// A Table from any columns and row function (built-in printers and custom resources' columns).
fn build_with(
    def: &ResourceDef,
    obj: &Value,
    include: Include,
    headers: bool,
    ctx: &Ctx,
    columns: impl FnOnce() -> Vec<Value>,
    row: &dyn Fn(&Value, &Ctx) -> Row,
) -> Value {
    let (items, metadata) = match obj.get("items").and_then(Value::as_array) {
        Some(items) => (items.as_slice(), obj["metadata"].clone()),
        None => (
            std::slice::from_ref(obj),
            json!({"resourceVersion": obj["metadata"]["resourceVersion"].clone()}),
        ),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let row = row(item, ctx);
            let mut out = json!({"cells": row.cells, "object": row_object(def, item, include)});
            if !row.conditions.is_empty() {
                out["conditions"] = Value::Array(row.conditions);
            }
            out
        })
        .collect();
    let mut table = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [],
        "rows": rows,
    });
    if headers {
        table["columnDefinitions"] = Value::Array(columns());
    }
    table
}

/// Columns computed at run time: a custom resource's `additionalPrinterColumns`.
pub trait DynamicPrinter: Send + Sync {
    /// The column definitions, as Table JSON.
    fn columns(&self) -> Vec<Value>;
    /// One object's cells, in column order.
    fn cells(&self, obj: &Value, ctx: &Ctx) -> Vec<Value>;
}

/// A Table of one object or a list, with a dynamic printer.
pub fn to_table_dynamic(
    def: &ResourceDef,
    printer: &dyn DynamicPrinter,
    obj: &Value,
    query: &Query,
) -> Value {
    build_with(
        def,
        obj,
        include(query),
        true,
        &Ctx::now(),
        || printer.columns(),
        &|item, ctx| printer.cells(item, ctx).into(),
    )
}

/// Watch events as one-row Tables, with a dynamic printer (see [`watch_events`]).
pub fn watch_events_dynamic(
    def: &'static ResourceDef,
    printer: std::sync::Arc<dyn DynamicPrinter>,
    query: &Query,
    events: EventStream,
) -> EventStream {
    let include = include(query);
    let mut headers = true;
    events
        .map(move |line| {
            let Ok(mut event) = serde_json::from_slice::<Value>(&line) else {
                return line;
            };
            let with_headers = std::mem::replace(&mut headers, false);
            if event["object"]["kind"] == "Status" {
                return line;
            }
            event["object"] = build_with(
                def,
                &event["object"],
                include,
                with_headers,
                &Ctx::now(),
                || printer.columns(),
                &|item, ctx| printer.cells(item, ctx).into(),
            );
            let mut bytes = serde_json::to_vec(&event).expect("JSON value");
            bytes.push(b'\n');
            bytes.into()
        })
        .boxed()
}

fn row_object(def: &ResourceDef, item: &Value, include: Include) -> Value {
    match include {
        Include::None => Value::Null,
        Include::Object => {
            let mut full = item.clone();
            full["kind"] = def.kind.into();
            full["apiVersion"] = def.api_version().into();
            full
        }
        Include::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": item["metadata"].clone(),
        }),
    }
}

/// A column of a kind's Table.
#[derive(Debug)]
pub(crate) struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
}

impl Column {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// A string column shown by default.
pub(crate) const fn col(name: &'static str, description: &'static str) -> Column {
    typed(name, "string", description)
}

/// A column of another type (`integer`, `boolean`, `date`) shown by default.
pub(crate) const fn typed(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        description,
        priority: 0,
    }
}

/// A string column shown only with `-o wide` (priority 1).
pub(crate) const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        priority: 1,
        ..col(name, description)
    }
}

pub(crate) const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub(crate) const CREATED_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The Name column every printer starts with.
pub(crate) const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: NAME_DOC,
    priority: 0,
};

/// The Age column (time since creation).
pub(crate) const AGE: Column = col("Age", CREATED_DOC);

/// The `-o wide` columns of workloads: their pod template's containers and images, and their
/// selector.
pub(crate) const CONTAINERS: Column = wide("Containers", "Names of each container in the template");
pub(crate) const IMAGES: Column = wide("Images", "Images referenced by each container in the template");
pub(crate) const SELECTOR: Column = wide("Selector", "The label selector of the pods");

/// One row: its cells, in column order, and upstream's row conditions (pods only).
pub(crate) struct Row {
    cells: Vec<Value>,
    conditions: Vec<Value>,
}

impl From<Vec<Value>> for Row {
    fn from(cells: Vec<Value>) -> Row {
        Row {
            cells,
            conditions: Vec::new(),
        }
    }
}

/// The columns of a kind and how to compute a row of them.
pub(crate) struct Printer {
    pub columns: &'static [Column],
    pub row: fn(&Value, &Ctx) -> Row,
}

/// Upstream's default table convertor: Name and Created At.
static DEFAULT: Printer = Printer {
    columns: &[NAME, typed("Created At", "date", CREATED_DOC)],
    row: |obj, _| {
        let created = obj["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or("0001-01-01T00:00:00Z");
        vec![format::name(obj).into(), created.into()].into()
    },
};

/// The printer of a kind: upstream's when it has one, else the default.
fn printer(group: &str, kind: &str) -> &'static Printer {
    core::printer(group, kind)
        .or_else(|| workloads::printer(group, kind))
        .or_else(|| networking::printer(group, kind))
        .or_else(|| cluster::printer(group, kind))
        .unwrap_or(&DEFAULT)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The fixed "now" of the printer tests.
    pub const NOW: &str = "2026-01-10T12:00:00Z";
    /// The creation time of test objects: an hour before [`NOW`].
    pub const CREATED: &str = "2026-01-10T11:00:00Z";

    /// Metadata of a test object created at [`CREATED`].
    pub fn meta(name: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "creationTimestamp": CREATED})
    }

    pub fn ctx() -> Ctx {
        Ctx {
            now: NOW.parse().unwrap(),
        }
    }

    /// The printer's column names (priority 1 ones marked with a trailing `*`).
    pub fn headers(group: &str, kind: &str) -> Vec<String> {
        printer(group, kind)
            .columns
            .iter()
            .map(|c| {
                if c.priority > 0 {
                    format!("{}*", c.name)
                } else {
                    c.name.to_owned()
                }
            })
            .collect()
    }

    /// The cells of one object's row.
    pub fn cells(group: &str, kind: &str, obj: &Value) -> Value {
        let printer = printer(group, kind);
        let row = (printer.row)(obj, &ctx());
        assert_eq!(
            row.cells.len(),
            printer.columns.len(),
            "{kind}: one cell per column: {:?}",
            row.cells
        );
        Value::Array(row.cells)
    }

    /// Checks each (object, expected cells) case of a kind.
    pub fn check(group: &str, kind: &str, cases: &[(Value, Value)]) {
        for (obj, want) in cases {
            assert_eq!(&cells(group, kind, obj), want, "{kind} row of {obj}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn find(group: &str, version: &str, plural: &str) -> &'static ResourceDef {
        apimachinery::resources::find(group, version, plural).unwrap()
    }

    #[test]
    fn recognises_kubectl_accept_headers() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }

    #[test]
    fn lists_become_rows() {
        let def = find("", "v1", "configmaps");
        let list = json!({"metadata": {"resourceVersion": "5"}, "items": [
            {"metadata": {"name": "a", "creationTimestamp": "2026-01-10T11:59:00Z"}, "data": {"x": "1", "y": "2"}, "binaryData": {"z": ""}}
        ]});
        let table = build(def, &list, Include::Metadata, true, &ctx());
        assert_eq!(table["rows"][0]["cells"], json!(["a", 3, "60s"]));
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(table["rows"][0]["object"]["metadata"]["name"], "a");
        assert_eq!(table["metadata"]["resourceVersion"], "5");
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Data", "Age"]);
        assert_eq!(table["columnDefinitions"][0]["format"], "name");
        assert_eq!(table["columnDefinitions"][1]["priority"], 0);
    }

    #[test]
    fn include_object_picks_what_rows_carry() {
        let def = find("", "v1", "configmaps");
        let cm = json!({"metadata": {"name": "a", "resourceVersion": "7"}, "data": {"k": "v"}});
        let full = build(def, &cm, Include::Object, true, &ctx());
        assert_eq!(full["rows"][0]["object"]["kind"], "ConfigMap");
        assert_eq!(full["rows"][0]["object"]["apiVersion"], "v1");
        assert_eq!(full["rows"][0]["object"]["data"]["k"], "v");
        assert_eq!(full["metadata"]["resourceVersion"], "7");
        let none = build(def, &cm, Include::None, true, &ctx());
        assert_eq!(none["rows"][0]["object"], Value::Null);
        assert_eq!(
            include(&Query::parse(Some("includeObject=Object"))),
            Include::Object
        );
        assert_eq!(include(&Query::parse(Some("includeObject=None"))), Include::None);
        assert_eq!(include(&Query::default()), Include::Metadata);
        assert!(validate_options(&Query::parse(Some("includeObject=Metadata"))).is_ok());
        assert!(validate_options(&Query::default()).is_ok());
        let err = validate_options(&Query::parse(Some("includeObject=All"))).unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn kinds_without_printers_get_name_and_created_at() {
        for (group, version, plural) in [
            ("rbac.authorization.k8s.io", "v1", "roles"),
            ("rbac.authorization.k8s.io", "v1", "clusterroles"),
            ("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
            ("", "v1", "limitranges"),
        ] {
            let def = find(group, version, plural);
            let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z"}});
            let table = build(def, &obj, Include::Metadata, true, &ctx());
            assert_eq!(
                table["rows"][0]["cells"],
                json!(["x", "2026-01-01T00:00:00Z"]),
                "{plural}"
            );
            assert_eq!(table["columnDefinitions"][1]["name"], "Created At");
            assert_eq!(table["columnDefinitions"][1]["type"], "date");
        }
    }

    #[test]
    fn every_printer_has_one_cell_per_column_even_for_empty_objects() {
        for def in apimachinery::resources::BUILTIN {
            let table = build(def, &json!({}), Include::None, true, &ctx());
            let columns = table["columnDefinitions"].as_array().unwrap().len();
            let cells = table["rows"][0]["cells"].as_array().unwrap().len();
            assert_eq!(columns, cells, "{}/{}", def.group, def.kind);
        }
    }

    #[tokio::test]
    async fn watch_events_become_one_row_tables_with_headers_once() {
        let def = find("", "v1", "configmaps");
        let lines = [
            json!({"type": "ADDED", "object": {"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}}),
            json!({"type": "MODIFIED", "object": {"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v", "l": "w"}}}),
            json!({"type": "ERROR", "object": {"kind": "Status", "code": 410}}),
        ];
        let input: Vec<bytes::Bytes> = lines
            .iter()
            .map(|l| {
                let mut v = serde_json::to_vec(l).unwrap();
                v.push(b'\n');
                v.into()
            })
            .collect();
        let out: Vec<Value> = watch_events(def, &Query::default(), futures::stream::iter(input).boxed())
            .map(|b| {
                assert!(b.ends_with(b"\n"));
                serde_json::from_slice(&b).unwrap()
            })
            .collect()
            .await;
        assert_eq!(out[0]["type"], "ADDED");
        assert_eq!(out[0]["object"]["kind"], "Table");
        assert_eq!(out[0]["object"]["columnDefinitions"].as_array().unwrap().len(), 3);
        assert_eq!(out[0]["object"]["rows"][0]["cells"], json!(["a", 1, "<unknown>"]));
        assert_eq!(out[1]["type"], "MODIFIED");
        assert_eq!(out[1]["object"]["columnDefinitions"], json!([]));
        assert_eq!(out[1]["object"]["rows"][0]["cells"][1], 2);
        assert_eq!(out[2], lines[2]);
    }
}
