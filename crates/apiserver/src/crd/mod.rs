//! CustomResourceDefinitions and the custom resources they define (upstream's
//! apiextensions-apiserver): the dynamic resource [`Registry`] (built-in resources plus every
//! established CRD's served versions, kept current from a store watch so that every server
//! sharing a datastore agrees and a restart serves them again), and what a custom resource needs
//! beyond the generic REST path.
//!
//! - `definition`: the CRD strategy (defaults, validation, status: conditions, acceptedNames,
//!   storedVersions) and what each served version of a CRD means for serving.
//! - `schema`: structural schemas: pruning, defaulting, validation.
//! - `validation_rules`: `x-kubernetes-validations` (CEL) compiled with the schema, run on writes.
//! - `rule_check`: cel-go's undeclared-reference and undefined-field compile checks.
//! - `cel_library`: the CEL environment and the Kubernetes CEL functions.
//! - `resource`: custom resources on the write and read paths (schema, apiVersion rewrite).
//! - `scale`: the scale subresource (autoscaling/v1 Scale).
//! - `printer`: server-side Tables from `additionalPrinterColumns`.
//! - `cleanup`: deleting a CRD (finalizer, instances removed first).
//! - `openapi`: the schemas the OpenAPI documents publish.

pub mod cel_library;
pub mod cleanup;
pub mod definition;
pub mod openapi;
pub mod printer;
pub mod resource;
pub mod rule_check;
pub mod scale;
pub mod schema;
pub mod validation_rules;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use apimachinery::resources::{BUILTIN, ResourceDef};
use futures::StreamExt;
use serde_json::Value;
use store::{KeyRange, RangeRequest};

use crate::objects::from_store;
use crate::rest::Rest;
pub use definition::CustomVersion;

/// Where CRDs live in the store (upstream's key).
pub const CRD_PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// Whether `def` is the CustomResourceDefinition resource itself.
pub fn is_definition(def: &ResourceDef) -> bool {
    def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions"
}

/// What is served right now: built-in resources, then the custom ones.
#[derive(Default)]
pub struct Catalog {
    /// The store revision the CRDs were read at: an older listing never replaces a newer one.
    revision: store::Revision,
    defs: Vec<&'static ResourceDef>,
    custom: Vec<Arc<CustomVersion>>,
    /// Every CRD as stored (for accepting a new CRD's names against the others).
    crds: Vec<Value>,
}

impl Catalog {
    fn builtin() -> Catalog {
        Catalog {
            revision: 0,
            defs: BUILTIN.iter().collect(),
            custom: Vec::new(),
            crds: Vec::new(),
        }
    }

    /// Every served resource, built-in first (discovery order).
    pub fn defs(&self) -> &[&'static ResourceDef] {
        &self.defs
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
        self.defs
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .copied()
    }

    /// The store revision the served set was read at (changes whenever it does).
    pub fn revision(&self) -> u64 {
        self.revision.max(0) as u64
    }

    /// The CRDs as last read from the store.
    pub fn crds(&self) -> &[Value] {
        &self.crds
    }

    /// The custom resource behind `def`, if it is one.
    pub fn custom(&self, def: &ResourceDef) -> Option<Arc<CustomVersion>> {
        self.custom
            .iter()
            .find(|c| c.def.group == def.group && c.def.version == def.version && c.def.plural == def.plural)
            .cloned()
    }
}

/// The live catalog, shared by every request handler.
pub struct Registry {
    catalog: RwLock<Arc<Catalog>>,
    /// CRDs whose instances are being removed by this server (see `cleanup`).
    cleaning: Mutex<HashSet<String>>,
    /// Bumped at every catalog change, for watches that end when their resource goes.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            catalog: RwLock::new(Arc::new(Catalog::builtin())),
            cleaning: Mutex::new(HashSet::new()),
            changes: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Registry {
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("catalog lock").clone()
    }

    /// Rebuilds the catalog from the CRDs in the store, then finishes any pending CRD deletion.
    pub async fn refresh(self: &Arc<Self>, rest: &Rest) -> Result<(), store::StoreError> {
        let resp = rest
            .store
            .range(RangeRequest::new(KeyRange::prefix(CRD_PREFIX)))
            .await?;
        let (mut crds, mut kvs) = (Vec::new(), Vec::new());
        for kv in &resp.kvs {
            if let Ok(crd) = from_store(&kv.value, kv.mod_revision) {
                crds.push(crd);
                kvs.push(kv.clone());
            }
        }
        self.install(&crds, resp.revision);
        for crd in crds.iter().filter(|c| cleanup::pending(c)) {
            self.start_cleanup(rest, crd);
        }
        retry_names(rest, &crds, &kvs).await?;
        Ok(())
    }

    fn install(&self, crds: &[Value], revision: store::Revision) {
        let mut catalog = Catalog::builtin();
        catalog.revision = revision;
        catalog.crds = crds.to_vec();
        for crd in crds {
            for version in definition::served_versions(crd) {
                let taken = catalog.find(version.def.group, version.def.version, version.def.plural);
                if taken.is_none() {
                    catalog.defs.push(version.def);
                    catalog.custom.push(Arc::new(version));
                }
            }
        }
        // Discovery order: custom groups after the built-in ones, by name (they all have
        // upstream's group priority 1000), versions by upstream's Kubernetes-aware order.
        let builtin = BUILTIN.len();
        let mut order: Vec<usize> = (0..catalog.custom.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (catalog.custom[a].def, catalog.custom[b].def);
            a.group
                .cmp(b.group)
                .then_with(|| compare_versions(a.version, b.version))
                .then_with(|| a.plural.cmp(b.plural))
        });
        let custom: Vec<Arc<CustomVersion>> = order.iter().map(|&i| catalog.custom[i].clone()).collect();
        catalog.defs.truncate(builtin);
        catalog.defs.extend(custom.iter().map(|c| c.def));
        catalog.custom = custom;
        let mut current = self.catalog.write().expect("catalog lock");
        if current.revision <= revision {
            *current = Arc::new(catalog);
            drop(current);
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Resolves once `def` is no longer served (its CRD was deleted, or the version dropped):
    /// upstream ends the watches of a custom resource then.
    pub fn served_until_removed(
        self: &Arc<Self>,
        def: &'static ResourceDef,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let registry = self.clone();
        let mut changes = self.changes.subscribe();
        async move {
            loop {
                if registry.catalog().custom(def).is_none() {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        }
    }

    fn start_cleanup(self: &Arc<Self>, rest: &Rest, crd: &Value) {
        let name = crate::objects::name(crd).unwrap_or_default().to_owned();
        if !self.cleaning.lock().expect("cleaning lock").insert(name.clone()) {
            return;
        }
        let (registry, rest, crd) = (self.clone(), rest.clone(), crd.clone());
        tokio::spawn(async move {
            if let Err(err) = cleanup::finalize(&rest, &crd).await {
                tracing::warn!(crd = %name, %err, "removing the custom resources of a deleted CRD failed; retrying on the next change");
            }
            registry.cleaning.lock().expect("cleaning lock").remove(&name);
            let _ = registry.refresh(&rest).await;
        });
    }

    /// Keeps the catalog current: a store watch on CRDs, re-listing after every change (CRDs
    /// change rarely) and starting over after any watch failure.
    pub fn spawn_watch(self: &Arc<Self>, rest: Rest) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move {
            loop {
                let revision = match rest.store.current_revision().await {
                    Ok(r) => r,
                    Err(err) => {
                        tracing::warn!(%err, "CRD watch: cannot read the revision");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(err) = registry.refresh(&rest).await {
                    tracing::warn!(%err, "CRD watch: cannot list CRDs");
                }
                match rest.store.watch(KeyRange::prefix(CRD_PREFIX), revision).await {
                    Ok(mut events) => {
                        while let Some(event) = events.next().await {
                            if event.is_err() {
                                break;
                            }
                            if let Err(err) = registry.refresh(&rest).await {
                                tracing::warn!(%err, "CRD watch: cannot list CRDs");
                            }
                        }
                    }
                    Err(err) => tracing::warn!(%err, "CRD watch failed"),
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
    }
}

/// Upstream's naming controller runs again whenever CRDs change: a CRD whose names were taken
/// gets them once the other CRD is gone (and is established then).
async fn retry_names(rest: &Rest, crds: &[Value], kvs: &[store::KeyValue]) -> Result<(), store::StoreError> {
    for (crd, kv) in crds.iter().zip(kvs) {
        let accepted = crd["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "NamesAccepted" && c["status"] == "True")
        });
        if accepted || crate::objects::meta_str(crd, "deletionTimestamp").is_some() {
            continue;
        }
        let mut updated = crd.clone();
        definition::accept_names(&mut updated, crds);
        if updated["status"] != crd["status"] {
            // A conflict means someone else wrote it meanwhile: their change triggers another pass.
            rest.store
                .update(&kv.key, crate::objects::to_store(&updated), kv.mod_revision, None)
                .await?;
        }
    }
    Ok(())
}

/// Upstream's Kubernetes-aware version order: GA before beta before alpha, higher numbers
/// first; versions not of the form `v1`, `v2beta3` come last, alphabetically.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> Option<(u64, u8, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        if major == 0 {
            return None;
        }
        let tail = &rest[digits..];
        let (stage, num) = if tail.is_empty() {
            return Some((major, 2, 0));
        } else if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        let minor = if num.is_empty() { 0 } else { num.parse().ok()? };
        Some((major, stage, minor))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Interned text: a CRD's names become `&'static str` so that custom resources share the
/// built-in [`ResourceDef`]. Each distinct string is stored once, so re-reading the same CRDs
/// allocates nothing new.
fn intern(s: &str) -> &'static str {
    static POOL: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut pool = POOL.lock().expect("intern pool");
    let pool = pool.get_or_insert_with(HashSet::new);
    if let Some(found) = pool.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    pool.insert(leaked);
    leaked
}

fn intern_list(items: &[String]) -> &'static [&'static str] {
    static POOL: Mutex<Vec<&'static [&'static str]>> = Mutex::new(Vec::new());
    let wanted: Vec<&'static str> = items.iter().map(|s| intern(s)).collect();
    let mut pool = POOL.lock().expect("intern pool");
    if let Some(found) = pool.iter().find(|l| **l == wanted.as_slice()) {
        return found;
    }
    let leaked: &'static [&'static str] = Box::leak(wanted.into_boxed_slice());
    pool.push(leaked);
    leaked
}

fn intern_def(def: ResourceDef) -> &'static ResourceDef {
    static POOL: Mutex<Vec<&'static ResourceDef>> = Mutex::new(Vec::new());
    let mut pool = POOL.lock().expect("intern pool");
    if let Some(found) = pool.iter().find(|d| ***d == def) {
        return found;
    }
    let leaked: &'static ResourceDef = Box::leak(Box::new(def));
    pool.push(leaked);
    leaked
}
