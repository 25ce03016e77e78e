//! What every kubelet-like component shares (the node agent, hollow nodes): the node's Lease in
//! `kube-node-lease` and the bookkeeping of node conditions.

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The Lease duration the kubelet asks for (nodeLeaseDurationSeconds).
pub const NODE_LEASE_DURATION_SECONDS: i32 = 40;
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// One node condition as a kubelet computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Condition {
    pub kind: &'static str,
    pub status: &'static str,
    pub reason: &'static str,
    pub message: &'static str,
}

/// Creates or renews node `name`'s Lease (holder = node name, 40 s, owned by the Node `uid`).
pub async fn renew_node_lease(client: &kube::Client, name: &str, uid: Option<&str>) -> anyhow::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let spec = json!({
        "holderIdentity": name,
        "leaseDurationSeconds": NODE_LEASE_DURATION_SECONDS,
        "renewTime": now,
    });
    match leases
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": spec})),
        )
        .await
    {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let mut metadata = json!({"name": name, "namespace": NODE_LEASE_NAMESPACE});
    if let Some(uid) = uid {
        metadata["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]);
    }
    let lease: Lease = serde_json::from_value(json!({"metadata": metadata, "spec": spec}))?;
    match leases.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The conditions to post: `wanted`, heartbeat `now`, each keeping the lastTransitionTime the
/// Node `current` (or null) has while its status does not change.
pub fn conditions(wanted: &[Condition], current: &Value, now: &str) -> Value {
    let existing = current["status"]["conditions"].as_array();
    wanted
        .iter()
        .map(|c| {
            let old = existing.and_then(|have| have.iter().find(|h| h["type"] == c.kind));
            let transition = match old {
                Some(old) if old["status"] == c.status => old["lastTransitionTime"].clone(),
                _ => now.into(),
            };
            json!({
                "type": c.kind,
                "status": c.status,
                "lastHeartbeatTime": now,
                "lastTransitionTime": transition,
                "reason": c.reason,
                "message": c.message,
            })
        })
        .collect()
}

/// Whether the conditions the API server has for Node `current` differ from `wanted` (then a
/// kubelet posts at once rather than at its next report period): e.g. the node lifecycle
/// controller set them Unknown while heartbeats were missing.
pub fn conditions_changed(wanted: &[Condition], current: &Value) -> bool {
    let have = current["status"]["conditions"].as_array();
    wanted.iter().any(|w| {
        !have.is_some_and(|have| {
            have.iter().any(|h| {
                h["type"] == w.kind
                    && h["status"] == w.status
                    && h["reason"] == w.reason
                    && h["message"] == w.message
            })
        })
    })
}

/// A timestamp as conditions carry it (whole seconds).
pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A UUID spelled from 32 hex digits (a machine id), for a systemUUID the machine does not
/// expose.
pub fn uuid_from_hex(hex: &str) -> Option<String> {
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| {
        let part = |from: usize, to: usize| &hex[from..to];
        [part(0, 8), part(8, 12), part(12, 16), part(16, 20), part(20, 32)].join("-")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_from_machine_ids() {
        assert_eq!(
            uuid_from_hex("0123456789abcdef0123456789abcdef").as_deref(),
            Some("01234567-89ab-cdef-0123-456789abcdef")
        );
        assert_eq!(uuid_from_hex("xyz"), None);
    }
}
