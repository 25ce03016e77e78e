//! Creating and deleting an owner's pods as upstream's `RealPodControl`: a pod from the
//! owner's template (its labels, annotations and finalizers, `generateName: <owner>-`, and a
//! controller ownerReference that blocks the owner's foreground deletion), with the
//! SuccessfulCreate / FailedCreate / SuccessfulDelete / FailedDelete events upstream records.

use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams};

use clientkit::{EventType, Recorder};

/// The ownerReference a controller puts on what it creates or adopts.
pub fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The controlling ownerReference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// `<owner>-`, or the bare name when the dash would make an invalid pod name prefix.
fn generate_name(owner: &str) -> String {
    let prefix = format!("{owner}-");
    // generateName takes at most 253 - 5 random characters; upstream validates the prefix as
    // a DNS subdomain: overlong prefixes are truncated by the server anyway.
    if prefix.len() > 253 {
        owner.to_owned()
    } else {
        prefix
    }
}

/// The pod `template` makes for the owner (upstream's `GetPodFromTemplate`).
pub fn pod_from_template(template: &PodTemplateSpec, owner_name: &str, owner: OwnerReference) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name(owner_name)),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// The message of an API error as Go's `err.Error()` prints it.
pub fn error_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

fn is_timeout(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 504 || s.reason == "Timeout")
}

/// Creates a pod for `owner` (`owner_ref` is the object the events are about). `Ok(None)`:
/// the namespace is being terminated, so no create can succeed and none is retried.
pub async fn create_pod(
    client: &kube::Client,
    recorder: &Recorder,
    namespace: &str,
    template: &PodTemplateSpec,
    owner_name: &str,
    controller: OwnerReference,
    owner_ref: &ObjectReference,
) -> Result<Option<Pod>, String> {
    let pod = pod_from_template(template, owner_name, controller);
    if pod.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
        return Err("unable to create pods, no labels".to_owned());
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.create(&PostParams::default(), &pod).await {
        Ok(created) => {
            let name = created.metadata.name.clone().unwrap_or_default();
            record(
                recorder,
                owner_ref,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created pod: {name}"),
            );
            Ok(Some(created))
        }
        Err(err) => {
            if !is_timeout(&err) {
                let message = format!("Error creating: {}", error_message(&err));
                record(recorder, owner_ref, EventType::Warning, "FailedCreate", message);
            }
            if namespace_terminating(&err) {
                return Ok(None);
            }
            Err(error_message(&err))
        }
    }
}

/// Records an event without waiting for it, as client-go's recorder hands events to a
/// background sink: a burst of creates is not slowed by their events.
fn record(
    recorder: &Recorder,
    object: &ObjectReference,
    kind: EventType,
    reason: &'static str,
    message: String,
) {
    let (recorder, object) = (recorder.clone(), object.clone());
    tokio::spawn(async move { recorder.record(&object, kind, reason, &message).await });
}

/// Upstream's `NamespaceTerminatingCause` on a refused create.
fn namespace_terminating(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 403
        && (s.message.contains("because it is being terminated")
            || s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))))
}

/// Deletes one of the owner's pods.
pub async fn delete_pod(
    client: &kube::Client,
    recorder: &Recorder,
    namespace: &str,
    name: &str,
    owner_ref: &ObjectReference,
) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            record(
                recorder,
                owner_ref,
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
            );
            Ok(())
        }
        Err(err) => {
            if !is_not_found(&err) {
                let message = format!("Error deleting: {}", error_message(&err));
                record(recorder, owner_ref, EventType::Warning, "FailedDelete", message);
            }
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_carry_the_template_and_the_controller_ref() {
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}, "finalizers": ["x/y"]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }))
        .unwrap();
        let owner = ObjectMeta {
            name: Some("web-abc".into()),
            uid: Some("u1".into()),
            ..ObjectMeta::default()
        };
        let pod = pod_from_template(
            &template,
            "web-abc",
            controller_ref("apps/v1", "ReplicaSet", &owner),
        );
        let pod = serde_json::to_value(pod).unwrap();
        assert_eq!(pod["metadata"]["generateName"], "web-abc-");
        assert_eq!(pod["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(pod["metadata"]["annotations"], json!({"a": "b"}));
        assert_eq!(pod["metadata"]["finalizers"], json!(["x/y"]));
        assert_eq!(
            pod["metadata"]["ownerReferences"],
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u1",
                    "controller": true, "blockOwnerDeletion": true}])
        );
    }
}
