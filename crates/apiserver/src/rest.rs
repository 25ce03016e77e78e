//! The generic REST handlers: get, list, create, update, patch, delete, deletecollection and
//! watch for every stored resource, over the [`Store`]. Kind-specific rules (defaulting,
//! validation, strategies) plug in later; what is here is what upstream's generic registry does
//! for every kind: names and generateName, uid, timestamps, generation, resourceVersion and
//! optimistic concurrency, finalizers, list pagination, selectors and watch semantics.

use std::sync::Arc;

use apimachinery::resources::ResourceDef;
use apimachinery::status::{ApiError, Cause};
use apimachinery::strategic_merge;
use base64::Engine;
use serde_json::{Value, json};
use store::{KeyRange, RangeRequest, Revision, Store, StoreError, WriteOutcome};

use crate::allocator::{Claims, ServiceRanges};
use crate::apply::Ownership;
use crate::crd::{self, CustomVersion};
use crate::filter::Filter;
use crate::objects::{self, from_store, meta_str, metadata_mut, now_rfc3339, to_store};
use crate::patch::PatchKind;
use crate::query::Query;
use crate::request::ResourceRequest;
use crate::{admission, allocator, conversion, defaults, deletion, strategy, validation};

/// How often an update retries against a concurrent writer when the client did not ask for a
/// specific resourceVersion (upstream's GuaranteedUpdate loops the same way).
const UPDATE_RETRIES: usize = 16;

/// The generic handlers, sharing one store.
#[derive(Clone)]
pub struct Rest {
    pub store: Arc<dyn Store>,
    pub cache: Arc<crate::cache::Cache>,
    /// The served resources, custom ones included.
    pub crds: Arc<crd::Registry>,
    /// Where Services' ClusterIPs and NodePorts come from.
    pub services: Arc<ServiceRanges>,
}

impl Rest {
    pub fn new(store: Arc<dyn Store>, services: Arc<ServiceRanges>) -> Rest {
        let cache = crate::cache::Cache::new(store.clone());
        Rest {
            store,
            cache,
            crds: Arc::new(crd::Registry::default()),
            services,
        }
    }
}

/// A list as ready-to-send JSON items.
pub struct RawList {
    pub kind: String,
    pub api_version: String,
    pub revision: Revision,
    /// The stored objects (shared with the cache), turned into items as they are sent.
    pub items: Vec<store::KeyValue>,
}

impl RawList {
    /// The list's JSON, as chunks to stream.
    pub fn into_chunks(self) -> impl Iterator<Item = bytes::Bytes> {
        let head = format!(
            "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{}\"}},\"items\":[",
            self.kind, self.api_version, self.revision
        );
        let separated = self.items.into_iter().enumerate().flat_map(|(i, kv)| {
            let item = objects::raw_list_item(&kv.value, kv.mod_revision).unwrap_or_else(|| {
                // Not a plain object (never written by this server): parse it instead.
                let mut obj = from_store(&kv.value, kv.mod_revision).unwrap_or_default();
                if let Some(map) = obj.as_object_mut() {
                    map.remove("kind");
                    map.remove("apiVersion");
                }
                crate::wire::to_vec(&obj)
            });
            let comma = (i > 0).then(|| bytes::Bytes::from_static(b","));
            comma.into_iter().chain([bytes::Bytes::from(item)])
        });
        std::iter::once(bytes::Bytes::from(head))
            .chain(separated)
            .chain([bytes::Bytes::from_static(b"]}")])
    }
}

/// Maps a store failure to the API error a client sees.
pub fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Compacted {
            requested,
            compact_revision,
        } => ApiError::expired(format!(
            "too old resource version: {requested} ({})",
            compact_revision.unwrap_or(requested)
        )),
        StoreError::FutureRevision { requested, current } => ApiError::timeout(format!(
            "Too large resource version: {requested}, current: {current}"
        )),
        StoreError::Unavailable(msg) => ApiError::unavailable(msg),
        StoreError::InvalidArgument(msg) => ApiError::bad_request(msg),
        other => ApiError::internal(other),
    }
}

impl Rest {
    /// The custom resource version behind `def` (None for built-ins).
    pub fn custom(&self, def: &ResourceDef) -> Option<Arc<CustomVersion>> {
        self.crds.catalog().custom(def)
    }

    pub async fn get(&self, def: &ResourceDef, req: &ResourceRequest) -> Result<Value, ApiError> {
        let name = req.name.as_deref().unwrap_or_default();
        let key = def.key(req.namespace.as_deref(), name);
        match self.store.get(&key).await.map_err(store_error)? {
            Some(kv) => conversion::decode(def, self.custom(def).as_deref(), &kv.value, kv.mod_revision),
            None => Err(ApiError::not_found(def.group_resource(), name)),
        }
    }

    /// A list, with `limit` / `continue` pagination, selectors and `resourceVersion` semantics.
    pub async fn list(
        &self,
        def: &ResourceDef,
        req: &ResourceRequest,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let custom = self.custom(def);
        let filter = match &custom {
            Some(c) => Filter::from_query_with(def, query, &c.selectable_fields)?,
            None => Filter::from_query(def, query)?,
        };
        let prefix = def.key_prefix(req.namespace.as_deref());
        let limit = query.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
        if let Some(list) = self
            .list_from_cache(def, custom.as_deref(), query, &filter, &prefix, limit)
            .await?
        {
            return Ok(list);
        }
        let (mut range, mut at) = (KeyRange::prefix(&prefix), None);
        if let Some(token) = query.get("continue").filter(|t| !t.is_empty()) {
            let (rv, start) = decode_continue(token)?;
            range = KeyRange::prefix_after(&prefix, &format!("{prefix}{start}"));
            at = Some(rv);
        } else if let Some(rv) = query
            .get("resourceVersion")
            .filter(|rv| !rv.is_empty() && *rv != "0")
        {
            let rv = objects::parse_resource_version(rv)?;
            // resourceVersionMatch=Exact reads at that revision; otherwise "not older than",
            // which the latest state satisfies (after checking the revision exists).
            if query.get("resourceVersionMatch") == Some("Exact") {
                at = Some(rv);
            } else {
                let current = self.store.current_revision().await.map_err(store_error)?;
                if rv > current {
                    return Err(store_error(StoreError::FutureRevision {
                        requested: rv,
                        current,
                    }));
                }
            }
        }
        let mut items = Vec::new();
        let mut next_start: Option<String> = None;
        let mut revision;
        let mut keys_left;
        // Filtering happens after reading, so read pages until the limit is met.
        loop {
            let mut request = RangeRequest::new(range.clone());
            request.revision = at;
            request.limit = limit.map(|l| l - items.len());
            let resp = self.store.range(request).await.map_err(store_error)?;
            keys_left = resp.count - resp.kvs.len() as i64;
            revision = at.unwrap_or(resp.revision);
            at = Some(revision);
            let last_key = resp.kvs.last().map(|kv| kv.key.clone());
            for kv in &resp.kvs {
                let obj = conversion::decode(def, custom.as_deref(), &kv.value, kv.mod_revision)?;
                if filter.matches(&obj) {
                    items.push(list_item(def, custom.is_some(), obj));
                }
            }
            match (resp.more, last_key) {
                (true, Some(last)) if limit.is_some_and(|l| items.len() >= l) => {
                    next_start = Some(last[prefix.len()..].to_owned());
                    break;
                }
                (true, Some(last)) => range = KeyRange::prefix_after(&prefix, &last),
                _ => break,
            }
        }
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if let Some(start) = next_start {
            metadata["continue"] = encode_continue(revision, &start).into();
            // Upstream counts what is left only without selectors (with them the count would
            // include objects that do not match).
            if filter.is_everything() {
                metadata["remainingItemCount"] = keys_left.into();
            }
        }
        let kind = match &custom {
            Some(c) => c.list_kind.clone(),
            None => def.list_kind(),
        };
        Ok(json!({"kind": kind, "apiVersion": def.api_version(), "metadata": metadata, "items": items}))
    }

    /// The objects of a list the watch cache can serve, as upstream's cacher serves them:
    /// `resourceVersion=0` (any state; `limit` ignored) and unpaginated lists at the latest or
    /// a minimum revision (once the cache has caught up with it). None for pages and exact
    /// revisions, which come from the store.
    async fn cached_kvs(
        &self,
        query: &Query,
        prefix: &str,
        limit: Option<usize>,
    ) -> Result<Option<(Revision, Vec<store::KeyValue>)>, ApiError> {
        if query.get("continue").is_some_and(|c| !c.is_empty())
            || query.get("resourceVersionMatch") == Some("Exact")
        {
            return Ok(None);
        }
        let min_revision = match query.get("resourceVersion").unwrap_or("") {
            "0" => None,
            _ if limit.is_some() => return Ok(None),
            "" => Some(self.store.current_revision().await.map_err(store_error)?),
            rv => Some(objects::parse_resource_version(rv)?),
        };
        Ok(self.cache.list(&KeyRange::prefix(prefix), min_revision).await)
    }

    async fn list_from_cache(
        &self,
        def: &ResourceDef,
        custom: Option<&CustomVersion>,
        query: &Query,
        filter: &Filter,
        prefix: &str,
        limit: Option<usize>,
    ) -> Result<Option<Value>, ApiError> {
        let Some((revision, kvs)) = self.cached_kvs(query, prefix, limit).await? else {
            return Ok(None);
        };
        let mut items = Vec::new();
        for kv in &kvs {
            let obj = conversion::decode(def, custom, &kv.value, kv.mod_revision)?;
            if filter.matches(&obj) {
                items.push(list_item(def, custom.is_some(), obj));
            }
        }
        Ok(Some(json!({
            "kind": custom.map_or_else(|| def.list_kind(), |c| c.list_kind.clone()),
            "apiVersion": def.api_version(),
            "metadata": {"resourceVersion": revision.to_string()},
            "items": items,
        })))
    }

    /// A list of a built-in kind served by the watch cache as ready JSON items, never
    /// materialized as a whole (lists of 100,000 pods stream in constant memory); None when
    /// [`Rest::list`] must answer.
    pub async fn list_raw(
        &self,
        def: &ResourceDef,
        req: &ResourceRequest,
        query: &Query,
    ) -> Result<Option<RawList>, ApiError> {
        if def.storage.is_empty()
            || !apimachinery::resources::BUILTIN.contains(def)
            || conversion::converts(def)
        {
            return Ok(None);
        }
        let filter = Filter::from_query(def, query)?;
        let prefix = def.key_prefix(req.namespace.as_deref());
        let limit = query.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
        let Some((revision, kvs)) = self.cached_kvs(query, &prefix, limit).await? else {
            return Ok(None);
        };
        let mut items = Vec::with_capacity(kvs.len());
        for kv in kvs {
            if filter.is_everything() || filter.matches(&from_store(&kv.value, kv.mod_revision)?) {
                items.push(kv);
            }
        }
        Ok(Some(RawList {
            kind: def.list_kind(),
            api_version: def.api_version(),
            revision,
            items,
        }))
    }

    pub async fn create(
        &self,
        def: &ResourceDef,
        req: &ResourceRequest,
        query: &Query,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let ownership = Ownership::track(def, req, query)?;
        self.create_with(def, req, query, obj, &ownership).await
    }

    /// Create, with field ownership recorded as `ownership` says.
    pub(crate) async fn create_with(
        &self,
        def: &ResourceDef,
        req: &ResourceRequest,
        query: &Query,
        mut obj: Value,
        ownership: &Ownership,
    ) -> Result<Value, ApiError> {
        check_type(def, &mut obj)?;
        check_namespace(def, req, &mut obj)?;
        let custom = self.custom(def);
        if let Some(custom) = &custom {
            crd::resource::admit_create(custom, &mut obj)?;
        }
        stamp_new_metadata(def, &mut obj, custom.is_some(), &Identity::fresh())?;
        defaults::apply(def, &mut obj);
        // Mutating admission runs before the strategy, as upstream's (the QoS class sees the
        // resources LimitRanger filled in).
        admission::admit_create(&*self.store, def, &mut obj).await?;
        let dry_run = query.dry_run()?;
        let name = objects::name(&obj).unwrap_or_default().to_owned();
        let namespace = objects::namespace(&obj).map(str::to_owned);
        let attrs = admission::webhook::Attributes {
            def,
            subresource: req.subresource.as_deref(),
            operation: "CREATE",
            name: &name,
            namespace: namespace.as_deref(),
            dry_run,
            old: None,
        };
        admission::webhook::admit(&*self.store, &self.cache, &attrs, &mut obj, true).await?;
        strategy::prepare_for_create(def, &mut obj);
        if crd::is_definition(def) {
            crd::definition::accept_names(&mut obj, self.crds.catalog().crds());
        }
        validation::validate(def, &obj, None)?;
        admission::webhook::admit(&*self.store, &self.cache, &attrs, &mut obj, false).await?;
        ownership.record(None, &mut obj);
        let key = def.key(namespace.as_deref(), &name);
        let unallocated = obj;
        // A lost race for an allocated address or port is retried with a fresh one.
        for _ in 0..UPDATE_RETRIES {
            let mut obj = unallocated.clone();
            let claims = self.services.allocate(&*self.store, def, &mut obj, None).await?;
            if dry_run {
                return Ok(obj);
            }
            let txn = claims.write_txn(&key, conversion::encode(def, custom.as_deref(), &obj), None);
            match WriteOutcome::from_txn(self.store.txn(txn).await.map_err(store_error)?) {
                WriteOutcome::Written { revision, .. } => {
                    metadata_mut(&mut obj).insert("resourceVersion".into(), revision.to_string().into());
                    return Ok(obj);
                }
                WriteOutcome::Conflict { current: Some(_) } => {
                    return Err(ApiError::already_exists(def.group_resource(), &name));
                }
                WriteOutcome::Conflict { current: None } => continue,
            }
        }
        Err(ApiError::conflict(
            def.group_resource(),
            &name,
            "too many concurrent allocations; try again",
        ))
    }

    /// PUT: replaces the object (or its status), with the client's resourceVersion as a
    /// precondition when it sent one.
    pub async fn update(
        &self,
        def: &ResourceDef,
        req: &ResourceRequest,
        query: &Query,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        check_type(def, &mut obj)?;
        check_namespace(def, req, &mut obj)?;
        let name = req.name.as_deref().unwrap_or_default();
        match objects::name(&obj) {
            Some(n) if n == name => {}
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            None => {
                metadata_mut(&mut obj).insert("name".into(), name.into());
            }
        }
        let expected = objects::resource_version(&obj)?;
        let dry_run = query.dry_run()?;
        let subresource = req.subresource.clone();
        let split = def.has_subresource("status");
        let ownership = Ownership::track(def, req, query)?;
        self.guaranteed_update(def, req, expected, dry_run, &ownership, move |current| {
            let mut updated = merge_update(current, obj.clone(), subresource.as_deref(), split);
            strategy::status_write_metadata(def, subresource.as_deref(), &obj, &mut updated);
            Ok(updated)
        })
        .await
    }

    /// PATCH: JSON patch, merge patch, strategic merge patch (built-in kinds only).
    pub async fn patch(
        &self,
        def: &ResourceDef,
        req: &ResourceRequest,
        query: &Query,
        content_type: &str,
        body: &[u8],
    ) -> Result<(Value, Vec<String>), ApiError> {
        let api_version = def.api_version();
        let kind = match content_type.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => PatchKind::Json,
            "application/merge-patch+json" => PatchKind::Merge,
            "application/strategic-merge-patch+json" if strategic_merge::supports(&api_version, def.kind) => {
                PatchKind::Strategic
            }
            _ => return Err(strategic_merge::unsupported_patch_type(&api_version, def.kind)),
        };
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let expected = match kind {
            PatchKind::Merge | PatchKind::Strategic => objects::resource_version(&patch)?,
            PatchKind::Json => None,
        };
        let dry_run = query.dry_run()?;
        let field_validation = crate::field_validation::Mode::from_query(query)?;
        let subresource = req.subresource.clone();
        let split = def.has_subresource("status");
        let custom = self.custom(def);
        let ownership = Ownership::track(def, req, query)?;
        // The warnings of the attempt that was written (a retry computes them again).
        let warnings = std::sync::Mutex::new(Vec::new());
        let patched = self
            .guaranteed_update(def, req, expected, dry_run, &ownership, |current| {
                let (mut patched, mut found) =
                    crate::patch::apply(def, kind, current, &patch, field_validation)?;
                // Custom resources drop (or, under Strict, refuse) fields their schema lacks.
                if let Some(custom) = &custom {
                    found.extend(crd::resource::check_unknown_fields(
                        def,
                        custom,
                        field_validation,
                        &mut patched,
                    )?);
                }
                *warnings.lock().expect("warnings lock") = found;
                let mut updated = merge_update(current, patched.clone(), subresource.as_deref(), split);
                strategy::status_write_metadata(def, subresource.as_deref(), &patched, &mut updated);
                Ok(updated)
            })
            .await?;
        Ok((patched, warnings.into_inner().expect("warnings lock")))
    }

    /// Reads the object, computes its new state with `change`, and writes it back with
    /// compare-and-swap, retrying on concurrent writes unless the client pinned a revision.
    pub(crate) async fn guaranteed_update(
        &self,
        def: &ResourceDef,
        req: &ResourceRequest,
        expected: Option<Revision>,
        dry_run: bool,
        ownership: &Ownership,
        change: impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let name = req.name.as_deref().unwrap_or_default();
        let key = def.key(req.namespace.as_deref(), name);
        let custom = self.custom(def);
        for _ in 0..UPDATE_RETRIES {
            let Some(kv) = self.store.get(&key).await.map_err(store_error)? else {
                return Err(ApiError::not_found(def.group_resource(), name));
            };
            if expected.is_some_and(|rv| rv != kv.mod_revision) {
                return Err(ApiError::stale(def.group_resource(), name));
            }
            let current = conversion::decode(def, custom.as_deref(), &kv.value, kv.mod_revision)?;
            let mut updated = change(&current)?;
            check_uid_unchanged(def, name, &current, &updated)?;
            deletion::keep_namespace_finalizers(def, req.subresource.as_deref(), &current, &mut updated);
            defaults::apply(def, &mut updated);
            preserve_system_fields(def, custom.is_some(), &current, &mut updated);
            if req.subresource.as_deref() == Some("status") {
                // A status write never counts as a change of the desired state.
                if let Some(g) = objects::metadata(&current).and_then(|m| m.get("generation")) {
                    metadata_mut(&mut updated).insert("generation".into(), g.clone());
                }
            }
            objects::drop_empty_metadata_collections(&mut updated);
            if let Some(custom) = &custom {
                crd::resource::admit(custom, &mut updated, Some(&current))?;
            }
            let attrs = admission::webhook::Attributes {
                def,
                subresource: req.subresource.as_deref(),
                operation: "UPDATE",
                name,
                namespace: req.namespace.as_deref(),
                dry_run,
                old: Some(&current),
            };
            admission::webhook::admit(&*self.store, &self.cache, &attrs, &mut updated, true).await?;
            strategy::prepare_for_update(def, &current, &mut updated);
            if crate::certificates::is_csr(def) {
                crate::certificates::prepare_for_update(req.subresource.as_deref(), &current, &mut updated);
            }
            if crd::is_definition(def) {
                crd::definition::accept_names(&mut updated, self.crds.catalog().crds());
            }
            let claims = self
                .services
                .allocate(&*self.store, def, &mut updated, Some(&current))
                .await?;
            if req.subresource.as_deref() == Some("ephemeralcontainers") {
                validation::validate_ephemeral_containers_update(def, &updated, &current)?;
            } else {
                validation::validate(def, &updated, Some(&current))?;
            }
            admission::webhook::admit(&*self.store, &self.cache, &attrs, &mut updated, false).await?;
            ownership.record(Some(&current), &mut updated);
            if strip_rv(&updated) == strip_rv(&current) {
                // No change: upstream writes nothing and keeps the resourceVersion.
                return Ok(current);
            }
            if dry_run {
                return Ok(updated);
            }
            if deletion::should_delete_during_update(def, &current, &updated) {
                // The last finalizer of a deleted object went: the object goes.
                let release = allocator::release_on_delete(def, &current);
                return match self.remove(&key, kv.mod_revision, &release).await? {
                    WriteOutcome::Written { .. } => Ok(updated),
                    WriteOutcome::Conflict { .. } if expected.is_none() => continue,
                    WriteOutcome::Conflict { .. } => Err(ApiError::stale(def.group_resource(), name)),
                };
            }
            let txn = claims.write_txn(
                &key,
                conversion::encode(def, custom.as_deref(), &updated),
                Some(kv.mod_revision),
            );
            match WriteOutcome::from_txn(self.store.txn(txn).await.map_err(store_error)?) {
                WriteOutcome::Written { revision, .. } => {
                    metadata_mut(&mut updated).insert("resourceVersion".into(), revision.to_string().into());
                    return Ok(updated);
                }
                // The object is unchanged: another write took an address or port first.
                WriteOutcome::Conflict { current: Some(now) } if now.mod_revision == kv.mod_revision => {
                    continue;
                }
                WriteOutcome::Conflict { .. } if expected.is_none() => continue,
                WriteOutcome::Conflict { .. } => return Err(ApiError::stale(def.group_resource(), name)),
            }
        }
        Err(ApiError::conflict(
            def.group_resource(),
            name,
            "too many concurrent updates; try again",
        ))
    }

    /// DELETE of one object: at once, or (with finalizers) by marking it deleted.
    pub async fn delete(
        &self,
        def: &ResourceDef,
        req: &ResourceRequest,
        query: &Query,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let options: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        validate_delete_options(&options, query)?;
        let propagation = deletion::Propagation::read(&options, query);
        let dry_run = query.dry_run()?
            || options["dryRun"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        let name = req.name.as_deref().unwrap_or_default();
        admission::admit_delete(def, name)?;
        let key = def.key(req.namespace.as_deref(), name);
        for _ in 0..UPDATE_RETRIES {
            let Some(kv) = self.store.get(&key).await.map_err(store_error)? else {
                return Err(ApiError::not_found(def.group_resource(), name));
            };
            let mut current = from_store(&kv.value, kv.mod_revision)?;
            check_preconditions(def, name, &options["preconditions"], &current)?;
            let attrs = admission::webhook::Attributes {
                def,
                subresource: None,
                operation: "DELETE",
                name,
                namespace: req.namespace.as_deref(),
                dry_run,
                old: Some(&current),
            };
            // Webhooks see a delete with no new object; what a mutating one returns is moot.
            let mut scratch = current.clone();
            for mutating in [true, false] {
                admission::webhook::admit(&*self.store, &self.cache, &attrs, &mut scratch, mutating).await?;
            }
            let before = current.clone();
            if crd::is_definition(def) {
                crd::cleanup::mark_for_deletion(&mut current);
            }
            let keep =
                match crate::graceful::before_delete(def, &mut current, &options, jiff::Timestamp::now()) {
                    crate::graceful::Outcome::Pending => return Ok(current),
                    // A pod with time left, or held by finalizers (the policy's included), stays.
                    crate::graceful::Outcome::Graceful(period) => {
                        deletion::finalizers_remain(def, &propagation, &mut current) || period > 0
                    }
                    crate::graceful::Outcome::NotGraceful => {
                        deletion::prepare(def, &propagation, &mut current) == deletion::Next::Keep
                    }
                };
            if keep {
                // Finalizers, a grace period or a terminating namespace hold the object.
                if dry_run || current == before {
                    // What the object would become, as upstream answers a dry run.
                    return Ok(current);
                }
                match self
                    .store
                    .update(&key, to_store(&current), kv.mod_revision, None)
                    .await
                    .map_err(store_error)?
                {
                    WriteOutcome::Written { revision, .. } => {
                        metadata_mut(&mut current)
                            .insert("resourceVersion".into(), revision.to_string().into());
                        return Ok(current);
                    }
                    WriteOutcome::Conflict { .. } => continue,
                }
            }
            if dry_run {
                return Ok(current);
            }
            let release = allocator::release_on_delete(def, &current);
            match self.remove(&key, kv.mod_revision, &release).await? {
                WriteOutcome::Written { .. } => return Ok(current),
                WriteOutcome::Conflict { .. } => continue,
            }
        }
        Err(ApiError::conflict(
            def.group_resource(),
            name,
            "too many concurrent updates; try again",
        ))
    }

    /// Deletes the object at `key` (still at revision `expected`) with what it held.
    async fn remove(
        &self,
        key: &str,
        expected: Revision,
        release: &Claims,
    ) -> Result<WriteOutcome, ApiError> {
        let txn = release.delete_txn(key, expected);
        Ok(WriteOutcome::from_txn(
            self.store.txn(txn).await.map_err(store_error)?,
        ))
    }

    /// DELETE of a collection: every object the selectors match, as a list of what was deleted.
    pub async fn delete_collection(
        &self,
        def: &ResourceDef,
        req: &ResourceRequest,
        query: &Query,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let mut list = self.list(def, req, query).await?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let mut deleted = Vec::with_capacity(items.len());
        for item in items {
            let mut one = req.clone();
            one.name = objects::name(&item).map(str::to_owned);
            one.namespace = objects::namespace(&item).map(str::to_owned);
            match self.delete(def, &one, query, body).await {
                Ok(obj) => deleted.push(list_item(def, self.custom(def).is_some(), obj)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        list["items"] = Value::Array(deleted);
        Ok(list)
    }
}

/// Upstream's ValidateDeleteOptions (what the policy then does is `deletion`'s).
fn validate_delete_options(options: &Value, query: &Query) -> Result<(), ApiError> {
    let policy = match options.get("propagationPolicy") {
        Some(Value::String(p)) => Some(p.clone()),
        _ => query.get("propagationPolicy").map(str::to_owned),
    };
    let orphan = options.get("orphanDependents").is_some_and(|o| !o.is_null())
        || query.get("orphanDependents").is_some();
    let mut causes = Vec::new();
    if let Some(policy) = &policy {
        let value = Value::String(policy.clone());
        if orphan {
            causes.push(Cause::invalid(
                "propagationPolicy",
                &value,
                "orphanDependents and deletionPropagation cannot be both set",
            ));
        }
        if !matches!(policy.as_str(), "Foreground" | "Background" | "Orphan") {
            causes.push(Cause::not_supported(
                "propagationPolicy",
                &value,
                &["Foreground", "Background", "Orphan", "nil"],
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("meta.k8s.io", "DeleteOptions", "", causes))
    }
}

pub(crate) fn strip_rv(obj: &Value) -> Value {
    let mut obj = obj.clone();
    metadata_mut(&mut obj).remove("resourceVersion");
    obj
}

/// Built-in list items carry no `kind` / `apiVersion` (upstream's typed lists omit them);
/// custom resources' do (upstream's unstructured lists keep them).
fn list_item(def: &ResourceDef, custom: bool, mut obj: Value) -> Value {
    if !custom
        && !def.storage.is_empty()
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("kind");
        map.remove("apiVersion");
    }
    obj
}

/// The new state of an update: a write to the main resource keeps the current status (for
/// kinds with a status subresource, `split`); a write to `/status` changes nothing but the status.
pub(crate) fn merge_update(current: &Value, mut new: Value, subresource: Option<&str>, split: bool) -> Value {
    match subresource {
        // Only CertificateSigningRequests have `/approval`.
        Some("approval") => crate::certificates::merge_approval(current, &new),
        Some("status") => {
            let mut updated = current.clone();
            updated["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if updated["status"].is_null() {
                updated.as_object_mut().map(|m| m.remove("status"));
            }
            updated
        }
        Some("ephemeralcontainers") => {
            // Upstream's dropNonEphemeralContainerUpdates: only the ephemeral containers change.
            let mut updated = current.clone();
            match new["spec"].get("ephemeralContainers").filter(|e| !e.is_null()) {
                Some(list) if updated["spec"].is_object() => {
                    updated["spec"]["ephemeralContainers"] = list.clone();
                }
                _ => {
                    if let Some(spec) = updated["spec"].as_object_mut() {
                        spec.remove("ephemeralContainers");
                    }
                }
            }
            updated
        }
        _ if !split => new,
        _ => {
            if let Some(status) = current.get("status") {
                new["status"] = status.clone();
            } else if let Some(map) = new.as_object_mut() {
                map.remove("status");
            }
            new
        }
    }
}

/// Fields clients cannot change: uid, creationTimestamp, deletion fields, generation (bumped
/// here on spec changes), and the type.
/// A write may not change `metadata.uid` (upstream's `ValidateObjectMetaUpdate`): controllers
/// put the uid they read in their patches as a guard against acting on a re-created object.
fn check_uid_unchanged(
    def: &ResourceDef,
    name: &str,
    current: &Value,
    updated: &Value,
) -> Result<(), ApiError> {
    let new = meta_str(updated, "uid").filter(|u| !u.is_empty());
    match (new, meta_str(current, "uid")) {
        (Some(new), Some(old)) if new != old => Err(ApiError::invalid(
            def.group,
            def.kind,
            name,
            vec![Cause::invalid(
                "metadata.uid",
                &Value::from(new),
                "field is immutable",
            )],
        )),
        _ => Ok(()),
    }
}

pub(crate) fn preserve_system_fields(def: &ResourceDef, custom: bool, current: &Value, updated: &mut Value) {
    for field in ["kind", "apiVersion"] {
        if let Some(v) = current.get(field) {
            updated[field] = v.clone();
        }
    }
    let old = objects::metadata(current).cloned().unwrap_or_default();
    let meta = metadata_mut(updated);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "name",
        "namespace",
    ] {
        match old.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    let generation = old.get("generation").and_then(Value::as_i64);
    match generation {
        Some(g) => {
            metadata_mut(updated).insert("generation".into(), g.into());
            // A custom resource counts every change but metadata (and status, when its status
            // subresource owns it), as upstream's customresource strategy.
            let bump = if custom {
                objects::spec_changed(current, updated)
                    || (!def.has_subresource("status") && current.get("status") != updated.get("status"))
            } else {
                strategy::bumps_generation(def, current, updated)
            };
            if bump {
                metadata_mut(updated).insert("generation".into(), (g + 1).into());
            }
        }
        None => {
            metadata_mut(updated).remove("generation");
        }
    }
}

/// The body's apiVersion and kind must be this resource's (and are filled in when absent).
pub(crate) fn check_type(def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    let want_version = def.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() && v != want_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )));
        }
        _ => obj["apiVersion"] = want_version.into(),
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != def.kind => Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            def.kind
        ))),
        _ => {
            obj["kind"] = def.kind.into();
            Ok(())
        }
    }
}

/// A namespaced object's namespace is the URL's; a cluster-scoped object has none.
pub(crate) fn check_namespace(
    def: &ResourceDef,
    req: &ResourceRequest,
    obj: &mut Value,
) -> Result<(), ApiError> {
    let in_body = objects::namespace(obj).map(str::to_owned);
    let meta = metadata_mut(obj);
    match (def.namespaced, req.namespace.as_deref(), in_body.as_deref()) {
        (true, Some(url), Some(body)) if url != body => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        (true, Some(url), _) => {
            meta.insert("namespace".into(), url.into());
            Ok(())
        }
        (true, None, _) => Err(ApiError::bad_request("a namespace is required for this resource")),
        (false, _, _) => {
            meta.remove("namespace");
            Ok(())
        }
    }
}

fn check_preconditions(def: &ResourceDef, name: &str, pre: &Value, current: &Value) -> Result<(), ApiError> {
    for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        if let Some(wanted) = pre.get(field).and_then(Value::as_str)
            && meta_str(current, field) != Some(wanted)
        {
            let actual = meta_str(current, field).unwrap_or_default();
            let detail = format!(
                "Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}"
            );
            return Err(ApiError::conflict(def.group_resource(), name, &detail));
        }
    }
    Ok(())
}

/// What a new object is given: the suffix for its generateName, its uid and creation time.
/// Fresh ones for real requests; the fuzz pipeline passes fixed ones.
pub(crate) struct Identity {
    pub suffix: String,
    pub uid: String,
    pub created: String,
}

impl Identity {
    pub fn fresh() -> Identity {
        Identity {
            suffix: random_suffix(),
            uid: uuid::Uuid::new_v4().to_string(),
            created: now_rfc3339(),
        }
    }
}

/// A new object's metadata as upstream's `BeforeCreate` sets it: a name from generateName (or
/// 422 without either), uid, creationTimestamp and generation 1 (for kinds that count
/// generations, `counts_generation` for custom resources); what clients may not set is
/// dropped.
pub(crate) fn stamp_new_metadata(
    def: &ResourceDef,
    obj: &mut Value,
    counts_generation: bool,
    identity: &Identity,
) -> Result<(), ApiError> {
    let meta = metadata_mut(obj);
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name {
        match meta
            .get("generateName")
            .and_then(Value::as_str)
            .filter(|g| !g.is_empty())
        {
            Some(prefix) => {
                let name = format!("{prefix}{}", identity.suffix);
                meta.insert("name".into(), name.into());
            }
            None => {
                return Err(ApiError::invalid(
                    def.group,
                    def.kind,
                    "",
                    vec![Cause::new(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )],
                ));
            }
        }
    }
    meta.insert("uid".into(), identity.uid.clone().into());
    meta.insert("creationTimestamp".into(), identity.created.clone().into());
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    if strategy::has_generation(def) || counts_generation {
        meta.insert("generation".into(), 1.into());
    } else {
        meta.remove("generation");
    }
    objects::drop_empty_metadata_collections(obj);
    Ok(())
}

/// Five characters from upstream's generateName alphabet (no vowels, no look-alikes).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Continue tokens as upstream's: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>"}`.
fn encode_continue(revision: Revision, start: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": format!("{start}\u{0}")});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(Revision, String), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    let rv = value["rv"].as_i64().filter(|rv| *rv > 0).ok_or_else(invalid)?;
    let start = value["start"].as_str().ok_or_else(invalid)?;
    // The token's start is "<last key>\0"; continue strictly after the last key.
    Ok((rv, start.trim_end_matches('\u{0}').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_options_are_validated_as_upstream() {
        let none = Query::parse(None);
        for ok in ["Foreground", "Background", "Orphan"] {
            assert!(validate_delete_options(&json!({"propagationPolicy": ok}), &none).is_ok());
        }
        assert!(validate_delete_options(&json!({"orphanDependents": true}), &none).is_ok());
        let err = validate_delete_options(&json!({"propagationPolicy": "Bogus"}), &none).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Bogus\": \
             supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
        );
        let both = json!({"propagationPolicy": "Orphan", "orphanDependents": false});
        let err = validate_delete_options(&both, &none).unwrap_err();
        assert!(
            err.message.ends_with(
                "propagationPolicy: Invalid value: \"Orphan\": orphanDependents and deletionPropagation cannot be both set"
            ),
            "{}",
            err.message
        );
        let query = Query::parse(Some("propagationPolicy=Sideways"));
        assert!(validate_delete_options(&json!({}), &query).is_err());
    }

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(42, "default/web-1");
        assert_eq!(decode_continue(&token).unwrap(), (42, "default/web-1".to_owned()));
        assert!(decode_continue("not-a-token").is_err());
    }

    #[test]
    fn status_writes_touch_only_status() {
        let current = json!({"spec": {"a": 1}, "status": {"s": 1}});
        let body = json!({"spec": {"a": 2}, "status": {"s": 2}});
        assert_eq!(
            merge_update(&current, body.clone(), Some("status"), true),
            json!({"spec": {"a": 1}, "status": {"s": 2}})
        );
        assert_eq!(
            merge_update(&current, body, None, true),
            json!({"spec": {"a": 2}, "status": {"s": 1}})
        );
    }

    #[test]
    fn generated_names_use_upstream_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
    }
}
