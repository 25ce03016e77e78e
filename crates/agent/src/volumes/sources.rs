//! The payloads of the volumes whose content comes from the API — configMap, secret,
//! downwardAPI and projected — as the kubelet's plugins build them (`MakePayload`,
//! `CollectData`): all keys or the listed items, `defaultMode` / per-item `mode`, `optional`.

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, ProjectedVolumeSource, Secret,
};

use super::atomic_writer::{File, Payload};
use super::tokens::{Tokens, Wanted};
use crate::downward::{self, NodeFacts};
use crate::objects::ObjectCache;

/// The default `defaultMode` (0644), as the API server defaults it.
pub const DEFAULT_MODE: i32 = 0o644;

/// Ownership applied to every file: the pod's `fsGroup`, and the user the token belongs to.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ownership {
    pub fs_group: Option<u32>,
    pub fs_user: Option<u32>,
}

impl Ownership {
    fn file(&self, data: impl Into<Vec<u8>>, mode: i32) -> File {
        let mut mode = mode as u32 & 0o7777;
        if self.fs_group.is_some() {
            // The kubelet's SetVolumeOwnership makes read-only volumes group-readable.
            mode |= 0o440;
        }
        File {
            data: data.into(),
            mode,
            uid: None,
            gid: self.fs_group,
        }
    }
}

/// Everything a payload can draw on.
pub struct Context<'a> {
    pub client: &'a kube::Client,
    pub objects: &'a ObjectCache,
    pub tokens: &'a Tokens,
    pub node: &'a NodeFacts,
    pub pod: &'a Pod,
    pub ownership: Ownership,
}

impl Context<'_> {
    fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }
}

/// `(key → bytes)` of a ConfigMap: `data` then `binaryData`.
fn config_map_entries(cm: &ConfigMap) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for (k, v) in cm.data.iter().flatten() {
        out.push((k.clone(), v.clone().into_bytes()));
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        out.push((k.clone(), v.0.clone()));
    }
    out
}

fn secret_entries(secret: &Secret) -> Vec<(String, Vec<u8>)> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// upstream's MakePayload for key/value objects; `missing_key` words the error of an item whose
/// key is absent.
fn key_payload(
    entries: &[(String, Vec<u8>)],
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    optional: bool,
    ownership: &Ownership,
    missing_key: impl Fn(&str) -> String,
    payload: &mut Payload,
) -> Result<(), String> {
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, data) in entries {
                payload.insert(key.clone(), ownership.file(data.clone(), default_mode));
            }
        }
        Some(items) => {
            for item in items {
                match entries.iter().find(|(k, _)| *k == item.key) {
                    Some((_, data)) => {
                        let mode = item.mode.unwrap_or(default_mode);
                        payload.insert(item.path.clone(), ownership.file(data.clone(), mode));
                    }
                    None if optional => {}
                    None => return Err(missing_key(&item.key)),
                }
            }
        }
    }
    Ok(())
}

/// A configMap volume's (or projection's) files.
pub async fn config_map(
    ctx: &Context<'_>,
    name: &str,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    optional: bool,
    payload: &mut Payload,
) -> Result<(), String> {
    let Some(cm) = ctx.objects.config_map(ctx.namespace(), name).await? else {
        return if optional {
            Ok(())
        } else {
            Err(format!("configmap {name:?} not found"))
        };
    };
    key_payload(
        &config_map_entries(&cm),
        items,
        default_mode,
        optional,
        &ctx.ownership,
        |key| format!("configmap references non-existent config key: {key}"),
        payload,
    )
}

/// A secret volume's (or projection's) files.
pub async fn secret(
    ctx: &Context<'_>,
    name: &str,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    optional: bool,
    payload: &mut Payload,
) -> Result<(), String> {
    let Some(secret) = ctx.objects.secret(ctx.namespace(), name).await? else {
        return if optional {
            Ok(())
        } else {
            Err(format!("secret {name:?} not found"))
        };
    };
    key_payload(
        &secret_entries(&secret),
        items,
        default_mode,
        optional,
        &ctx.ownership,
        |key| format!("references non-existent secret key: {key}"),
        payload,
    )
}

/// A downwardAPI volume's (or projection's) files.
pub fn downward_api(
    ctx: &Context<'_>,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    payload: &mut Payload,
) -> Result<(), String> {
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            downward::metadata_value(ctx.pod, &field.field_path)?
        } else if let Some(resource) = &item.resource_field_ref {
            let wanted = resource.container_name.as_deref().unwrap_or_default();
            let spec = ctx.pod.spec.as_ref();
            let container = spec
                .into_iter()
                .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
                .find(|c| c.name == wanted)
                .ok_or_else(|| format!("container {wanted} not found"))?;
            downward::resource_value(container, resource, ctx.node)?
        } else {
            continue;
        };
        let mode = item.mode.unwrap_or(default_mode);
        payload.insert(item.path.clone(), ctx.ownership.file(value, mode));
    }
    Ok(())
}

/// A projected volume's files: every source in order.
pub async fn projected(
    ctx: &Context<'_>,
    source: &ProjectedVolumeSource,
    payload: &mut Payload,
) -> Result<(), String> {
    let default_mode = source.default_mode.unwrap_or(DEFAULT_MODE);
    let mut errors = Vec::new();
    for projection in source.sources.iter().flatten() {
        let result = if let Some(cm) = &projection.config_map {
            let optional = cm.optional.unwrap_or(false);
            config_map(ctx, &cm.name, cm.items.as_ref(), default_mode, optional, payload).await
        } else if let Some(s) = &projection.secret {
            let optional = s.optional.unwrap_or(false);
            secret(ctx, &s.name, s.items.as_ref(), default_mode, optional, payload).await
        } else if let Some(d) = &projection.downward_api {
            downward_api(ctx, d.items.as_deref().unwrap_or_default(), default_mode, payload)
        } else if let Some(token) = &projection.service_account_token {
            let account = ctx
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.service_account_name.as_deref())
                .unwrap_or("default");
            let wanted = Wanted {
                namespace: ctx.namespace(),
                account,
                pod_name: ctx.pod.metadata.name.as_deref().unwrap_or_default(),
                pod_uid: ctx.pod.metadata.uid.as_deref().unwrap_or_default(),
                audience: token.audience.as_deref().unwrap_or_default(),
                expiration_seconds: token.expiration_seconds.unwrap_or(3600),
            };
            match ctx.tokens.get(ctx.client, &wanted).await {
                Ok(jwt) => {
                    let owned = ctx.ownership.fs_user.is_some() || ctx.ownership.fs_group.is_some();
                    let mode = if owned {
                        0o600
                    } else {
                        default_mode as u32 & 0o7777
                    };
                    let file = File {
                        data: jwt.into_bytes(),
                        mode,
                        uid: ctx.ownership.fs_user,
                        gid: ctx.ownership.fs_group,
                    };
                    payload.insert(token.path.clone(), file);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else if projection.cluster_trust_bundle.is_some() {
            Err("clusterTrustBundle projections are not supported".into())
        } else {
            Ok(())
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        // upstream's utilerrors.Aggregate.
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<(String, Vec<u8>)> {
        vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    fn missing(key: &str) -> String {
        format!("configmap references non-existent config key: {key}")
    }

    #[test]
    fn all_keys_or_the_listed_items_with_modes() {
        let owner = Ownership::default();
        let mut payload = Payload::new();
        key_payload(&entries(), None, 0o600, false, &owner, missing, &mut payload).unwrap();
        assert_eq!(payload.len(), 2);
        assert_eq!(payload["a"], File::new(*b"1", 0o600));
        let items = vec![item("b", "dir/b.txt", Some(0o400)), item("a", "a", None)];
        let mut payload = Payload::new();
        key_payload(
            &entries(),
            Some(&items),
            0o644,
            false,
            &owner,
            missing,
            &mut payload,
        )
        .unwrap();
        assert_eq!(payload["dir/b.txt"], File::new(*b"2", 0o400));
        assert_eq!(payload["a"], File::new(*b"1", 0o644));
    }

    #[test]
    fn missing_keys_fail_unless_optional() {
        let owner = Ownership::default();
        let items = vec![item("nope", "x", None), item("a", "a", None)];
        let mut payload = Payload::new();
        let err = key_payload(
            &entries(),
            Some(&items),
            0o644,
            false,
            &owner,
            missing,
            &mut payload,
        );
        assert_eq!(
            err.unwrap_err(),
            "configmap references non-existent config key: nope"
        );
        let mut payload = Payload::new();
        key_payload(
            &entries(),
            Some(&items),
            0o644,
            true,
            &owner,
            missing,
            &mut payload,
        )
        .unwrap();
        assert_eq!(payload.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn fs_group_makes_files_group_readable_and_owned() {
        let owner = Ownership {
            fs_group: Some(2000),
            fs_user: None,
        };
        let file = owner.file(*b"x", 0o400);
        assert_eq!((file.mode, file.gid, file.uid), (0o440, Some(2000), None));
    }
}
