//! The request pipelines the fuzz targets run: the same functions the handlers call, in the
//! same order, with what needs the store left out (admission, Service allocation, the write):
//! a create's result is what would be stored; an update starts from an object that went
//! through the create pipeline, as stored ones did.

use apimachinery::fields::FieldSelector;
use apimachinery::managed_fields;
use apimachinery::resources::ResourceDef;
use apimachinery::selector::LabelSelector;
use apimachinery::status::ApiError;
use serde_json::{Value, json};

use crate::apply::Ownership;
use crate::field_validation::{self, Mode};
use crate::objects::{self, metadata_mut};
use crate::patch::PatchKind;
use crate::query::Query;
use crate::request::{ResourceRequest, Verb};
use crate::{defaults, filter, rest, strategy, table, validation};

/// One input's run: the kind, the request options and how far it got.
pub struct Run {
    def: &'static ResourceDef,
    status: bool,
    mode: Mode,
    force: bool,
    include: &'static str,
    pub stages: usize,
}

type Result<T> = std::result::Result<T, ApiError>;

impl Run {
    pub fn new(def: &'static ResourceDef, flags: u8) -> Run {
        Run {
            def,
            status: flags & 1 != 0,
            mode: match (flags >> 1) & 3 {
                1 => Mode::Ignore,
                2 => Mode::Strict,
                _ => Mode::Warn,
            },
            force: flags & 8 != 0,
            include: ["Metadata", "Object", "None", ""][usize::from((flags >> 4) & 3)],
            stages: 0,
        }
    }

    fn stage(&mut self) {
        self.stages += 1;
    }

    fn request(&self, verb: Verb, name: Option<&str>, subresource: bool) -> ResourceRequest {
        ResourceRequest {
            group: self.def.group.into(),
            version: self.def.version.into(),
            resource: self.def.plural.into(),
            namespace: self.def.namespaced.then(|| "default".to_owned()),
            name: name.map(str::to_owned),
            subresource: (subresource && self.status).then(|| "status".to_owned()),
            verb,
        }
    }

    fn query(&self) -> Query {
        let mut query = format!("fieldManager=fuzz&includeObject={}", self.include);
        if self.force {
            query.push_str("&force=true");
        }
        Query::parse(Some(&query))
    }

    /// POST with a JSON body.
    pub fn create_json(&mut self, body: &[u8]) -> Result<Value> {
        let obj = crate::server::decode("application/json", body)?;
        self.create_decoded(obj)
    }

    /// POST with a protobuf body.
    pub fn create_protobuf(&mut self, body: &[u8]) -> Result<Value> {
        let obj = crate::server::decode("application/vnd.kubernetes.protobuf", body)?;
        self.create_decoded(obj)
    }

    fn create_decoded(&mut self, mut obj: Value) -> Result<Value> {
        self.stage();
        if self.def.storage.is_empty() {
            let user = crate::pki::UserInfo {
                name: "fuzz".into(),
                groups: vec!["system:masters".into()],
                ..Default::default()
            };
            let answer = crate::reviews::review(self.def, &user, &Default::default(), obj, None)?;
            self.stage();
            return Ok(answer);
        }
        field_validation::check(self.def, self.mode, &mut obj)?;
        self.stage();
        let req = self.request(Verb::Create, None, false);
        let ownership = Ownership::track(self.def, &req, &self.query())?;
        let created = self.create(&req, obj, &ownership)?;
        self.print(&created);
        Ok(created)
    }

    /// `Rest::create_with` up to the store write, then the store's encoding round trip.
    fn create(&mut self, req: &ResourceRequest, mut obj: Value, ownership: &Ownership) -> Result<Value> {
        let def = self.def;
        rest::check_type(def, &mut obj)?;
        rest::check_namespace(def, req, &mut obj)?;
        self.stage();
        let identity = rest::Identity {
            suffix: "x2b4z".into(),
            uid: "00000000-0000-4000-8000-000000000000".into(),
            created: "2026-01-01T00:00:00Z".into(),
        };
        rest::stamp_new_metadata(def, &mut obj, false, &identity)?;
        defaults::apply(def, &mut obj);
        strategy::prepare_for_create(def, &mut obj);
        // (Admission and Service allocation read the store: not here.)
        validation::validate(def, &obj, None)?;
        self.stage();
        ownership.record(None, &mut obj);
        self.stage();
        stored(&obj, 2)
    }

    /// The pure part of `Rest::guaranteed_update` once `change` computed the new state.
    fn update_to(&mut self, current: &Value, mut updated: Value, ownership: &Ownership) -> Result<Value> {
        defaults::apply(self.def, &mut updated);
        rest::preserve_system_fields(self.def, false, current, &mut updated);
        strategy::prepare_for_update(self.def, current, &mut updated);
        validation::validate(self.def, &updated, Some(current))?;
        self.stage();
        ownership.record(Some(current), &mut updated);
        self.stage();
        if rest::strip_rv(&updated) == rest::strip_rv(current) {
            return Ok(current.clone());
        }
        let stored = stored(&updated, 3)?;
        self.print(&stored);
        Ok(stored)
    }

    /// The stored object of a two-part input: its first part through the create pipeline.
    fn current(&mut self, part: &[u8]) -> Result<Value> {
        let obj: Value = serde_json::from_slice(part).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let req = self.request(Verb::Create, None, false);
        let ownership = Ownership::track(self.def, &req, &Query::parse(Some("fieldManager=setup")))?;
        let current = self.create(&req, obj, &ownership)?;
        self.stage();
        Ok(current)
    }

    fn named_request(&self, verb: Verb, current: &Value) -> ResourceRequest {
        self.request(verb, objects::name(current), true)
    }

    /// PUT: the request body replaces the stored object (or its status).
    pub fn update(&mut self, body: &[u8]) -> Result<Value> {
        let (stored, body) = super::split(body);
        let current = self.current(stored)?;
        let req = self.named_request(Verb::Update, &current);
        let mut obj = crate::server::decode("application/json", body)?;
        field_validation::check(self.def, self.mode, &mut obj)?;
        rest::check_type(self.def, &mut obj)?;
        rest::check_namespace(self.def, &req, &mut obj)?;
        let name = req.name.as_deref().unwrap_or_default();
        match objects::name(&obj) {
            Some(n) if n != name => return Err(ApiError::bad_request("name mismatch")),
            Some(_) => {}
            None => {
                metadata_mut(&mut obj).insert("name".into(), name.into());
            }
        }
        objects::resource_version(&obj)?;
        self.stage();
        let ownership = Ownership::track(self.def, &req, &self.query())?;
        let updated = rest::merge_update(
            &current,
            obj,
            req.subresource.as_deref(),
            self.def.has_subresource("status"),
        );
        self.update_to(&current, updated, &ownership)
    }

    /// PATCH with a JSON patch, merge patch or strategic merge patch (as `Rest::patch`).
    pub fn patch(&mut self, kind: PatchKind, body: &[u8]) -> Result<Value> {
        let (stored, body) = super::split(body);
        let current = self.current(stored)?;
        let req = self.named_request(Verb::Patch, &current);
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        if let PatchKind::Merge | PatchKind::Strategic = kind {
            objects::resource_version(&patch)?;
        }
        self.stage();
        let (patched, _) = crate::patch::apply(self.def, kind, &current, &patch, self.mode)?;
        self.stage();
        let updated = rest::merge_update(
            &current,
            patched,
            req.subresource.as_deref(),
            self.def.has_subresource("status"),
        );
        let ownership = Ownership::track(self.def, &req, &self.query())?;
        self.update_to(&current, updated, &ownership)
    }

    /// Server-side apply onto an existing object (as `Rest::apply`).
    pub fn apply(&mut self, body: &[u8]) -> Result<Value> {
        let (stored, body) = super::split(body);
        let current = self.current(stored)?;
        let req = self.named_request(Verb::Patch, &current);
        let Some((config, writer)) = self.apply_config(&req, body)? else {
            return Ok(current);
        };
        match managed_fields::apply(Some(&current), &config, &writer, self.force)
            .map_err(|e| ApiError::bad_request(format!("{e:?}")))?
        {
            Some(new) => {
                self.stage();
                let updated = rest::merge_update(
                    &current,
                    new,
                    req.subresource.as_deref(),
                    self.def.has_subresource("status"),
                );
                self.update_to(&current, updated, &Ownership::Computed)
            }
            None => Ok(current),
        }
    }

    /// Server-side apply creating the object (YAML or JSON body).
    pub fn apply_create(&mut self, body: &[u8]) -> Result<Value> {
        // The URL names the object the configuration names (a client sends both).
        let config = crate::apply::decode_config(body).ok();
        let name = config.as_ref().and_then(objects::name).unwrap_or("fuzz");
        let req = self.request(Verb::Patch, Some(name), false);
        let Some((config, writer)) = self.apply_config(&req, body)? else {
            return Err(ApiError::bad_request("not stored"));
        };
        let created = managed_fields::apply(None, &config, &writer, self.force)
            .map_err(|e| ApiError::bad_request(format!("{e:?}")))?;
        self.stage();
        let Some(created) = created else {
            return Err(ApiError::bad_request("a new object always changes"));
        };
        let created = self.create(&req, created, &Ownership::Computed)?;
        self.print(&created);
        Ok(created)
    }

    /// The checks `Rest::apply` makes of a configuration, and its writer.
    fn apply_config(
        &mut self,
        req: &ResourceRequest,
        body: &[u8],
    ) -> Result<Option<(Value, managed_fields::Writer)>> {
        if self.def.storage.is_empty() {
            return Ok(None);
        }
        let mut config = crate::apply::decode_config(body)?;
        if !config.is_object() || config["kind"].as_str() != Some(self.def.kind) {
            return Err(ApiError::bad_request("not this kind"));
        }
        let name = req.name.as_deref().unwrap_or_default();
        match objects::name(&config) {
            Some(n) if n != name => return Err(ApiError::bad_request("name mismatch")),
            Some(_) => {}
            None => {
                metadata_mut(&mut config).insert("name".into(), name.into());
            }
        }
        field_validation::check(self.def, self.mode, &mut config)?;
        self.stage();
        let mut writer = crate::apply::writer(self.def, req, "fuzz".into());
        if writer.subresource == "status" {
            for key in config.as_object().into_iter().flat_map(|o| o.keys()) {
                if key != "status" && key != "metadata" {
                    writer.ignored.insert(&[format!("f:{key}")]);
                }
            }
        }
        objects::resource_version(&config)?;
        Ok(Some((config, writer)))
    }

    /// Label and field selectors (the first part: selector text, also read as a query string
    /// and a path), matched against the object of the second part.
    pub fn selectors(&mut self, body: &[u8]) -> Result<Value> {
        let (selector, object) = super::split(body);
        let selector = String::from_utf8_lossy(selector);
        let obj: Value = serde_json::from_slice(object).unwrap_or(Value::Null);
        let labels = LabelSelector::parse(&selector);
        let fields = FieldSelector::parse(&selector);
        if let Ok(labels) = &labels {
            labels.matches_json(obj.get("metadata").and_then(|m| m.get("labels")));
            self.stage();
        }
        if let Ok(fields) = &fields {
            fields.matches(|f| Some(f.to_owned()));
            self.stage();
        }
        for selector in [&obj["spec"]["selector"], &obj] {
            if let Ok(s) = LabelSelector::from_json(selector) {
                s.matches_json(obj.get("metadata").and_then(|m| m.get("labels")));
                self.stage();
            }
        }
        let _ = crate::request::parse(&http::Method::GET, &selector, false);
        let query = Query::parse(Some(&selector));
        let _ = (query.int("limit"), query.dry_run(), query.field_manager());
        let filter = filter::Filter::from_query(self.def, &query)?;
        filter.matches(&obj);
        self.stage();
        Ok(obj)
    }

    /// Table printing of any object, and of a list holding it.
    pub fn table(&mut self, body: &[u8]) -> Result<Value> {
        let obj: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        if !obj.is_object() {
            // Tables print what the store holds: objects, and lists of them.
            return Err(ApiError::bad_request("not an object"));
        }
        self.stage();
        self.print(&obj);
        let list = json!({"kind": "List", "metadata": {"resourceVersion": "1"}, "items": [obj]});
        self.print(&list);
        Ok(list)
    }

    /// What a get or list of the result would print as a Table.
    fn print(&mut self, obj: &Value) {
        table::to_table(self.def, obj, &self.query());
        self.stage();
    }
}

/// The object as a read returns it after the store's JSON encoding.
fn stored(obj: &Value, revision: store::Revision) -> Result<Value> {
    objects::from_store(&objects::to_store(obj), revision)
}
