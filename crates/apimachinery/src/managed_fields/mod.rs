//! Field ownership (`metadata.managedFields`) and server-side apply, as upstream's
//! structured-merge-diff and field manager do them:
//!
//! - every write records, per manager (`fieldManager`, or the client's User-Agent prefix), the
//!   fields it set or changed, and takes them away from the other managers ([`update`]);
//! - an apply ([`apply`]) merges the manager's configuration into the live object, removes the
//!   fields it applied last time and no longer does (unless someone else owns them), and fails
//!   with a conflict when it would change a value another manager owns (unless forced).
//!
//! `set` is the field-set tree (FieldsV1), `shape` the per-kind schema (from the protobuf
//! table and patch markers), `typed` the walks over objects.

pub mod set;
pub mod shape;
pub mod typed;

use serde_json::{Value, json};

pub use set::FieldSet;
pub use shape::Shape;

use typed::{compare, field_set, merge, remove, without_managed_fields};

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Entry {
    /// Whether two entries are the same manager (upstream's manager identifier: appliers are
    /// one manager across API versions, updaters one per version).
    fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == "Apply" || self.api_version == other.api_version)
    }

    /// As conflicts name managers: `"kubectl"`, `"kube-controller-manager" using apps/v1`.
    fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

/// The entries of an object's `metadata.managedFields`. Malformed entries make the whole list
/// unreadable (None), as upstream then starts over.
pub fn decode(obj: &Value) -> Option<Vec<Entry>> {
    let list = obj.get("metadata")?.get("managedFields")?.as_array()?;
    list.iter()
        .map(|e| {
            let operation = e["operation"].as_str()?;
            if !matches!(operation, "Apply" | "Update") || e["fieldsType"] != "FieldsV1" {
                return None;
            }
            Some(Entry {
                manager: e["manager"].as_str().unwrap_or_default().to_owned(),
                operation: operation.to_owned(),
                api_version: e["apiVersion"].as_str().filter(|v| !v.is_empty())?.to_owned(),
                time: e["time"].as_str().map(str::to_owned),
                subresource: e["subresource"].as_str().unwrap_or_default().to_owned(),
                fields: FieldSet::from_fields_v1(e.get("fieldsV1").unwrap_or(&json!({})))?,
            })
        })
        .collect()
}

/// The entries as `metadata.managedFields`, in upstream's order (operation, time, manager,
/// apiVersion, subresource); None when there are none.
pub fn encode(entries: &[Entry]) -> Option<Value> {
    if entries.is_empty() {
        return None;
    }
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.operation, &a.time, &a.manager, &a.api_version, &a.subresource).cmp(&(
            &b.operation,
            &b.time,
            &b.manager,
            &b.api_version,
            &b.subresource,
        ))
    });
    let list = sorted
        .into_iter()
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.fields.to_fields_v1(),
            });
            if let Some(time) = &e.time {
                v["time"] = time.clone().into();
            }
            if !e.subresource.is_empty() {
                v["subresource"] = e.subresource.clone().into();
            }
            v
        })
        .collect();
    Some(Value::Array(list))
}

/// Who writes, and how the written object is shaped.
#[derive(Clone, Debug)]
pub struct Writer {
    pub manager: String,
    /// The group-version the client used (`apps/v1`).
    pub api_version: String,
    /// `status`, `scale`, … or "" for the main resource.
    pub subresource: String,
    /// RFC 3339, for the entry's `time`.
    pub now: String,
    pub shape: Shape,
    /// Fields this endpoint never takes ownership of (`status` on the main resource of kinds
    /// with a status subresource, everything but `status` on `/status`).
    pub ignored: FieldSet,
}

/// Fields no manager ever owns: the type and the metadata the server sets.
fn stripped() -> FieldSet {
    let mut set = FieldSet::default();
    for path in [
        &["f:apiVersion"][..],
        &["f:kind"],
        &["f:metadata"],
        &["f:metadata", "f:name"],
        &["f:metadata", "f:namespace"],
        &["f:metadata", "f:creationTimestamp"],
        &["f:metadata", "f:selfLink"],
        &["f:metadata", "f:uid"],
        &["f:metadata", "f:clusterName"],
        &["f:metadata", "f:generation"],
        &["f:metadata", "f:managedFields"],
        &["f:metadata", "f:resourceVersion"],
    ] {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        set.insert(&path);
    }
    set
}

/// The entries to start from: the request object's own when it brings a readable, non-empty
/// list (an explicit empty list resets ownership), else the live object's.
fn base_entries(live: Option<&Value>, new: &Value) -> Vec<Entry> {
    let requested = new.get("metadata").and_then(|m| m.get("managedFields"));
    if let Some(Value::Array(list)) = requested {
        if list.is_empty() || (list.len() == 1 && list[0].as_object().is_some_and(|o| o.is_empty())) {
            return Vec::new();
        }
        if let Some(entries) = decode(new).filter(|e| !e.is_empty()) {
            return entries;
        }
    }
    live.and_then(decode).unwrap_or_default()
}

/// Records a non-apply write (create when `live` is None): the writer owns what it changed,
/// the others lose it, removed fields leave every set. Sets `new`'s `metadata.managedFields`.
pub fn update(live: Option<&Value>, new: &mut Value, writer: &Writer) {
    let mut entries = base_entries(live, new);
    let empty = json!({});
    let old = live.map(without_managed_fields).unwrap_or(empty);
    let new_plain = without_managed_fields(new);
    let comparison = compare(&old, &new_plain, &writer.shape);
    let changed = comparison.modified.union(&comparison.added);
    for entry in entries.iter_mut() {
        entry.fields = entry.fields.difference(&changed).difference(&comparison.removed);
    }
    let mine = changed
        .recursive_difference(&writer.ignored)
        .difference(&stripped());
    if !mine.is_empty() {
        let me = Entry {
            manager: writer.manager.clone(),
            operation: "Update".into(),
            api_version: writer.api_version.clone(),
            time: Some(writer.now.clone()),
            subresource: writer.subresource.clone(),
            fields: mine,
        };
        match entries.iter_mut().find(|e| e.same_manager(&me)) {
            Some(existing) => {
                existing.fields = existing.fields.union(&me.fields);
                existing.time = me.time;
            }
            None => entries.push(me),
        }
    }
    entries.retain(|e| !e.fields.is_empty());
    typed::set_managed_fields(new, encode(&entries));
}

/// Why an apply was refused.
#[derive(Debug, PartialEq)]
pub enum ApplyError {
    BadRequest(String),
    /// Other managers own fields the apply changes: (manager as printed, path as printed).
    Conflicts(Vec<(String, String)>),
}

impl ApplyError {
    /// Upstream's message for conflicts.
    pub fn conflict_message(conflicts: &[(String, String)]) -> String {
        if let [(manager, path)] = conflicts {
            return format!("Apply failed with 1 conflict: conflict with {manager}: {path}");
        }
        let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for manager in managers {
            lines.push(format!("conflicts with {manager}:"));
            for (_, path) in conflicts.iter().filter(|(m, _)| m == manager) {
                lines.push(format!("- {path}"));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    }
}

/// Server-side apply of `config` by `writer` onto `live` (None: the object does not exist
/// yet). Returns the new object with its `metadata.managedFields`, or None when nothing
/// changes at all.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    writer: &Writer,
    force: bool,
) -> Result<Option<Value>, ApplyError> {
    if config
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|f| !f.is_null())
    {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    if config["apiVersion"].as_str() != Some(writer.api_version.as_str()) {
        return Err(ApplyError::BadRequest(format!(
            "Incorrect version specified in apply patch. Specified patch version: {}, expected: {}",
            config["apiVersion"].as_str().unwrap_or_default(),
            writer.api_version
        )));
    }
    let mut entries = live.and_then(decode).unwrap_or_default();
    let live_plain = live.map(without_managed_fields).unwrap_or_else(|| json!({}));
    let me_template = Entry {
        manager: writer.manager.clone(),
        operation: "Apply".into(),
        api_version: writer.api_version.clone(),
        time: Some(writer.now.clone()),
        subresource: writer.subresource.clone(),
        fields: FieldSet::default(),
    };
    let previous = entries.iter().position(|e| e.same_manager(&me_template));
    let last_applied = previous.map(|i| entries[i].fields.clone()).unwrap_or_default();
    let applied = field_set(config, &writer.shape)
        .recursive_difference(&writer.ignored)
        .difference(&stripped());

    let mut merged = merge(&live_plain, config, &writer.shape);
    // Fields applied last time and not now go, unless another manager still owns them.
    let others: FieldSet = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != previous)
        .fold(FieldSet::default(), |acc, (_, e)| acc.union(&e.fields));
    let mut dropped = FieldSet::default();
    for path in last_applied.difference(&applied).members() {
        if !others.covers(&path) && !applied.covers(&path) {
            dropped.insert(&path);
        }
    }
    remove(&mut merged, &dropped, &writer.shape);

    let comparison = compare(&live_plain, &merged, &writer.shape);
    let changed = comparison.modified.union(&comparison.added);
    let mut conflicts = Vec::new();
    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) == previous {
            continue;
        }
        let taken = entry.fields.intersection(&changed);
        if taken.is_empty() {
            continue;
        }
        if force {
            entry.fields = entry.fields.difference(&taken);
        } else {
            let manager = entry.describe();
            conflicts.extend(taken.members().iter().map(|p| (manager.clone(), set::display(p))));
        }
    }
    if !conflicts.is_empty() {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for entry in entries.iter_mut() {
        entry.fields = entry.fields.difference(&comparison.removed);
    }
    let object_changed = !comparison.is_same();
    let mut me = me_template;
    me.fields = applied;
    match previous {
        Some(i) => {
            if !object_changed && entries[i].fields == me.fields && entries[i].api_version == me.api_version {
                me.time = entries[i].time.clone();
            }
            entries[i] = me;
        }
        None => entries.push(me),
    }
    entries.retain(|e| !e.fields.is_empty());
    let encoded = encode(&entries);
    let unchanged_fields = live.and_then(|l| l.get("metadata")?.get("managedFields")) == encoded.as_ref();
    if live.is_some() && !object_changed && unchanged_fields {
        return Ok(None);
    }
    typed::set_managed_fields(&mut merged, encoded);
    Ok(Some(merged))
}

#[cfg(test)]
mod tests;
