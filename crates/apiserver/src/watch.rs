//! Watch requests: Kubernetes watch events (`ADDED` / `MODIFIED` / `DELETED` / `BOOKMARK` /
//! `ERROR`) from a store watch, with upstream's resourceVersion semantics: "" or "0" start with
//! the current state as ADDED events; a revision N streams every change after N; a revision
//! whose history is compacted ends with a 410 Expired ERROR event. Selectors apply to both the
//! old and the new object, so an object leaving the selection is seen as DELETED.
//!
//! Watches are served by the watch cache (`cache`) once it has loaded; until then, or when it
//! cannot serve, each API watch is its own store watch.

use std::time::Duration;

use apimachinery::resources::ResourceDef;
use apimachinery::status::ApiError;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};
use store::{Event, EventKind, KeyRange, RangeRequest, Revision};

use crate::cache::{Item, Start};
use crate::conversion::{self, decode};
use crate::crd::CustomVersion;
use crate::filter::Filter;
use crate::objects::{self, from_store};
use crate::query::Query;
use crate::request::ResourceRequest;
use crate::rest::{Rest, store_error};

/// A stream of newline-delimited watch events, ready to send.
pub type EventStream = BoxStream<'static, Bytes>;

pub async fn watch(
    rest: &Rest,
    def: &ResourceDef,
    req: &ResourceRequest,
    query: &Query,
) -> Result<EventStream, ApiError> {
    let custom = rest.custom(def);
    let filter = match &custom {
        Some(c) => Filter::from_query_with(def, query, &c.selectable_fields)?,
        None => Filter::from_query(def, query)?,
    };
    let prefix = def.key_prefix(req.namespace.as_deref());
    let range = match &req.name {
        // A watch of one object (e.g. `kubectl get pod x -w`) is a fieldSelector on its name.
        Some(name) => KeyRange::key(&def.key(req.namespace.as_deref(), name)),
        None => KeyRange::prefix(&prefix),
    };
    let bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = match query.get("sendInitialEvents") {
        Some("true") => true,
        Some("false") => false,
        _ => matches!(query.get("resourceVersion"), None | Some("") | Some("0")),
    };
    let initial_end_bookmark = query.get("sendInitialEvents") == Some("true") && bookmarks;
    let start_rv = match query.get("resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(objects::parse_resource_version(rv)?),
    };

    if let Some(cached) = from_cache(rest, &range, send_initial, start_rv).await {
        let watch = match cached {
            Ok(watch) => watch,
            Err(err) => {
                let error = event_line("ERROR", &store_error(err).to_status());
                return Ok(stream::iter([error]).boxed());
            }
        };
        // The initial objects become lines as they are sent (a watch of 100,000 pods from
        // resourceVersion 0 must not hold them all as lines at once).
        let (initial_filter, initial_custom) = (filter.clone(), custom.clone());
        let end = initial_end_bookmark.then(|| bookmark(def, watch.revision, true));
        let def_copy = *def;
        let initial = stream::iter(watch.initial)
            .filter_map(move |kv| {
                futures::future::ready(match &initial_custom {
                    // Stored bytes go out as they are when the request's version is the storage's.
                    None if !conversion::converts(&def_copy) => added_line(&initial_filter, &kv),
                    // Custom resources are shown in the requested version, pruned and
                    // defaulted; built-ins converted from their storage version.
                    custom => decode(&def_copy, custom.as_deref(), &kv.value, kv.mod_revision)
                        .ok()
                        .filter(|obj| initial_filter.matches(obj))
                        .map(|obj| event_line("ADDED", &obj)),
                })
            })
            .chain(stream::iter(end));
        let (kind, version) = (def.kind, def.api_version());
        let removed = custom.as_ref().map(|c| rest.crds.served_until_removed(c.def));
        let events = watch.events.filter_map(move |item| {
            futures::future::ready(match item {
                Item::Event(event) => translate(&def_copy, &filter, custom.as_deref(), &event),
                Item::Progress(revision) if bookmarks => Some(bookmark_of(kind, &version, revision, false)),
                Item::Progress(_) => None,
            })
        });
        return ended_with_resource(timed(initial.chain(events).boxed(), query)?, removed);
    }
    // The initial state (when asked for), then every change after it.
    let mut initial = Vec::new();
    let after = if send_initial {
        let resp = rest
            .store
            .range(RangeRequest::new(range.clone()))
            .await
            .map_err(store_error)?;
        for kv in &resp.kvs {
            let obj = decode(def, custom.as_deref(), &kv.value, kv.mod_revision)?;
            if filter.matches(&obj) {
                initial.push(event_line("ADDED", &obj));
            }
        }
        if initial_end_bookmark {
            initial.push(bookmark(def, resp.revision, true));
        }
        resp.revision
    } else {
        start_rv.unwrap_or(0)
    };
    // A custom resource's watch ends when its CRD (or version) stops being served.
    let removed = custom.as_ref().map(|c| rest.crds.served_until_removed(c.def));
    let def = *def;
    let changes = match rest.store.watch(range, after).await {
        Ok(changes) => changes,
        Err(err) => {
            let error = event_line("ERROR", &store_error(err).to_status());
            return Ok(stream::iter(initial.into_iter().chain([error])).boxed());
        }
    };
    let events = changes
        .scan(false, move |ended, item| {
            if *ended {
                return futures::future::ready(None);
            }
            let line = match item {
                Ok(event) => translate(&def, &filter, custom.as_deref(), &event),
                Err(err) => {
                    *ended = true;
                    Some(event_line("ERROR", &store_error(err).to_status()))
                }
            };
            futures::future::ready(Some(line))
        })
        .filter_map(futures::future::ready);
    let stream = stream::iter(initial).chain(events).boxed();
    ended_with_resource(timed(stream, query)?, removed)
}

/// The stream, ended when a custom resource stops being served (when `removed` resolves).
fn ended_with_resource(
    stream: EventStream,
    removed: Option<impl std::future::Future<Output = ()> + Send + 'static>,
) -> Result<EventStream, ApiError> {
    Ok(match removed {
        Some(removed) => stream.take_until(removed).boxed(),
        None => stream,
    })
}

/// The stream, ended at `timeoutSeconds` when the client gave one.
fn timed(mut stream: EventStream, query: &Query) -> Result<EventStream, ApiError> {
    if let Some(seconds) = query.int("timeoutSeconds")?.filter(|s| *s > 0) {
        let deadline = tokio::time::sleep(Duration::from_secs(seconds as u64));
        stream = stream.take_until(deadline).boxed();
    }
    Ok(stream)
}

/// The cached watch for this request, when the cache can serve it.
async fn from_cache(
    rest: &Rest,
    range: &KeyRange,
    send_initial: bool,
    start_rv: Option<Revision>,
) -> Option<Result<crate::cache::CachedWatch, store::StoreError>> {
    let start = match (send_initial, start_rv) {
        (true, _) => Start::Now,
        (false, Some(rv)) => Start::After(rv),
        // No initial state and no revision: from now on.
        (false, None) => Start::After(rest.store.current_revision().await.ok()?),
    };
    rest.cache.watch(range.clone(), start).await
}

/// An ADDED line for a stored object the filter selects.
fn added_line(filter: &Filter, kv: &store::KeyValue) -> Option<Bytes> {
    if !filter.is_everything() && !filter.matches(&from_store(&kv.value, kv.mod_revision).ok()?) {
        return None;
    }
    raw_line("ADDED", &kv.value, kv.mod_revision)
}

/// A watch event of a stored object stamped with `revision`, spliced from its bytes.
fn raw_line(kind: &str, stored: &[u8], revision: Revision) -> Option<Bytes> {
    match objects::raw_with_revision(stored, revision, false) {
        Some(object) => {
            let mut line = Vec::with_capacity(object.len() + 32);
            line.extend_from_slice(b"{\"type\":\"");
            line.extend_from_slice(kind.as_bytes());
            line.extend_from_slice(b"\",\"object\":");
            line.extend_from_slice(&object);
            line.extend_from_slice(b"}\n");
            Some(Bytes::from(line))
        }
        None => Some(event_line(kind, &from_store(stored, revision).ok()?)),
    }
}

/// One store event as a watch event, or None when the selectors hide it.
fn translate(
    def: &ResourceDef,
    filter: &Filter,
    custom: Option<&CustomVersion>,
    event: &Event,
) -> Option<Bytes> {
    if custom.is_none() && !conversion::converts(def) && filter.is_everything() {
        // Every event goes out and the stored bytes are what the client asked for: splice
        // them, as initial events are, instead of parsing and printing each object once per
        // watcher (a pod event reaches every controller, the scheduler and the node).
        return match event.kind {
            EventKind::Delete => {
                // A deleted object carries the revision of its deletion.
                let old = event.prev_kv.as_ref()?;
                raw_line("DELETED", &old.value, event.revision())
            }
            EventKind::Put => {
                let kind = if event.prev_kv.is_some() {
                    "MODIFIED"
                } else {
                    "ADDED"
                };
                raw_line(kind, &event.kv.value, event.kv.mod_revision)
            }
        };
    }
    let old = event
        .prev_kv
        .as_ref()
        .and_then(|kv| decode(def, custom, &kv.value, kv.mod_revision).ok());
    let old_matches = old.as_ref().is_some_and(|o| filter.matches(o));
    match event.kind {
        EventKind::Delete => {
            let mut obj = old?;
            // A deleted object carries the revision of its deletion.
            objects::metadata_mut(&mut obj)
                .insert("resourceVersion".into(), event.revision().to_string().into());
            old_matches.then(|| event_line("DELETED", &obj))
        }
        EventKind::Put => {
            let obj = decode(def, custom, &event.kv.value, event.kv.mod_revision).ok()?;
            match (old_matches, filter.matches(&obj)) {
                (false, true) => Some(event_line("ADDED", &obj)),
                (true, true) => Some(event_line("MODIFIED", &obj)),
                (true, false) => Some(event_line("DELETED", &obj)),
                (false, false) => None,
            }
        }
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    Bytes::from(crate::wire::event_line(kind, object))
}

/// A BOOKMARK: an object of the watched kind holding only a resourceVersion (and, at the end of
/// the initial events, upstream's `k8s.io/initial-events-end` annotation).
fn bookmark(def: &ResourceDef, revision: Revision, initial_events_end: bool) -> Bytes {
    bookmark_of(def.kind, &def.api_version(), revision, initial_events_end)
}

fn bookmark_of(kind: &str, api_version: &str, revision: Revision, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": kind, "apiVersion": api_version, "metadata": metadata}),
    )
}
