//! `Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1` (client-go's metadata
//! client, kube-rs's `metadata_watcher`): reads answered with only each object's metadata, as
//! `PartialObjectMetadata` / `PartialObjectMetadataList` (also `v1beta1`).

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::watch::EventStream;

/// The `meta.k8s.io` version asked for (`v1`, `v1beta1`), if the client wants metadata only.
pub fn wanted(accept: &str) -> Option<&'static str> {
    accept.split(',').find_map(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let meta = params.contains(&"g=meta.k8s.io")
            && (params.contains(&"as=PartialObjectMetadata")
                || params.contains(&"as=PartialObjectMetadataList"));
        if !meta {
            return None;
        }
        if params.contains(&"v=v1beta1") {
            Some("v1beta1")
        } else if params.contains(&"v=v1") {
            Some("v1")
        } else {
            None
        }
    })
}

/// One object as PartialObjectMetadata.
pub fn object(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A get's object or a list as metadata only.
pub fn convert(obj: &Value, version: &str) -> Value {
    match obj.get("items").and_then(Value::as_array) {
        Some(items) => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": format!("meta.k8s.io/{version}"),
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
            "items": items.iter().map(|i| object(i, version)).collect::<Vec<_>>(),
        }),
        None => object(obj, version),
    }
}

/// Watch events with each object as PartialObjectMetadata (ERROR events' Status unchanged).
pub fn watch_events(events: EventStream, version: &'static str) -> EventStream {
    events
        .map(move |line| {
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                return line;
            };
            if event["type"] == "ERROR" {
                return line;
            }
            let kind = event["type"].as_str().unwrap_or_default();
            Bytes::from(crate::wire::event_line(kind, &object(&event["object"], version)))
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_only_answers() {
        assert_eq!(
            wanted("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"),
            Some("v1")
        );
        assert_eq!(
            wanted("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1"),
            Some("v1beta1")
        );
        assert_eq!(wanted("application/json;as=Table;g=meta.k8s.io;v=v1"), None);
        let list = json!({"kind": "ConfigMapList", "metadata": {"resourceVersion": "5"},
                          "items": [{"metadata": {"name": "a"}, "data": {"k": "v"}}]});
        assert_eq!(
            convert(&list, "v1"),
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "5"},
                   "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a"}}]})
        );
    }
}
