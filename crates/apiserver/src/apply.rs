//! Server-side apply (`PATCH` with `application/apply-patch+yaml`) and the field ownership
//! (`metadata.managedFields`) every write records, over `apimachinery::managed_fields`.

use apimachinery::managed_fields::{self, ApplyError, FieldSet, Writer, shape};
use apimachinery::resources::ResourceDef;
use apimachinery::status::{ApiError, Cause};
use serde_json::Value;

use crate::field_validation::{self, Mode};
use crate::objects::{self, metadata_mut, now_rfc3339};
use crate::query::Query;
use crate::request::ResourceRequest;
use crate::rest::Rest;

/// How a write records field ownership.
pub enum Ownership {
    /// The writer owns what it changed (create, update, patch).
    Track(Writer),
    /// Ownership was already computed (server-side apply).
    Computed,
}

impl Ownership {
    /// Ownership tracking for a non-apply write by this request's manager.
    pub fn track(def: &ResourceDef, req: &ResourceRequest, query: &Query) -> Result<Ownership, ApiError> {
        Ok(Ownership::Track(writer(def, req, query.field_manager()?)))
    }

    /// Sets `new`'s managedFields for a write replacing `live` (None: a create).
    pub fn record(&self, live: Option<&Value>, new: &mut Value) {
        if let Ownership::Track(writer) = self {
            managed_fields::update(live, new, writer);
        }
    }
}

pub(crate) fn writer(def: &ResourceDef, req: &ResourceRequest, manager: String) -> Writer {
    let subresource = req.subresource.clone().unwrap_or_default();
    let mut ignored = FieldSet::default();
    if subresource.is_empty() && def.has_subresource("status") {
        // The main resource never takes status (its strategy resets it).
        ignored.insert(&["f:status".to_owned()]);
    }
    Writer {
        manager,
        api_version: def.api_version(),
        subresource,
        now: now_rfc3339(),
        shape: shape::for_kind(&def.api_version(), def.kind),
        ignored,
    }
}

/// An apply body: JSON, or YAML (which kubectl and the client libraries never send, people
/// with curl do).
pub(crate) fn decode_config(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return Ok(value);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("error decoding YAML: the body is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

impl Rest {
    /// Server-side apply: creates the object from the configuration when it does not exist
    /// (`true` in the result), else merges it in under the manager's ownership.
    pub async fn apply(
        &self,
        def: &ResourceDef,
        req: &ResourceRequest,
        query: &Query,
        body: &[u8],
    ) -> Result<(bool, Value), ApiError> {
        if query.get("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::new(
                    "FieldValueRequired",
                    "fieldManager",
                    "Required value: is required for apply patch",
                )],
            ));
        }
        let force = query.flag("force");
        let mut config = decode_config(body)?;
        if !config.is_object() {
            return Err(ApiError::bad_request("the apply configuration must be an object"));
        }
        if config["kind"].as_str() != Some(def.kind) {
            return Err(ApiError::bad_request(format!(
                "the kind of the applied object ({}) does not match the resource ({})",
                config["kind"].as_str().unwrap_or_default(),
                def.kind
            )));
        }
        let name = req.name.as_deref().unwrap_or_default();
        match objects::name(&config) {
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            Some(_) => {}
            None => {
                metadata_mut(&mut config).insert("name".into(), name.into());
            }
        }
        match self.custom(def) {
            // Custom resources: by their schema (unknown fields refused under Strict).
            Some(custom) => crate::crd::resource::check_applied_fields(
                def,
                &custom,
                Mode::from_query(query)?,
                &mut config,
            )?,
            None => {
                field_validation::check(def, Mode::from_query(query)?, &mut config)?;
            }
        }
        let mut writer = writer(def, req, query.field_manager()?);
        if writer.subresource == "status" {
            // /status applies only the status.
            for key in config.as_object().into_iter().flat_map(|o| o.keys()) {
                if key != "status" && key != "metadata" {
                    writer.ignored.insert(&[format!("f:{key}")]);
                }
            }
        }
        let key = def.key(req.namespace.as_deref(), name);
        let exists = self
            .store
            .get(&key)
            .await
            .map_err(crate::rest::store_error)?
            .is_some();
        if !exists && req.subresource.is_none() {
            let created = managed_fields::apply(None, &config, &writer, force)
                .map_err(apply_error)?
                .expect("a new object always changes");
            match self
                .create_with(def, req, query, created, &Ownership::Computed)
                .await
            {
                Err(e) if e.reason == "AlreadyExists" => {} // raced with a create: apply onto it
                other => return other.map(|obj| (true, obj)),
            }
        }
        let expected = objects::resource_version(&config)?;
        let updated = self
            .guaranteed_update(
                def,
                req,
                expected,
                query.dry_run()?,
                &Ownership::Computed,
                move |current| match managed_fields::apply(Some(current), &config, &writer, force)
                    .map_err(apply_error)?
                {
                    Some(new) => Ok(crate::rest::merge_update(
                        current,
                        new,
                        req.subresource.as_deref(),
                        def.has_subresource("status"),
                    )),
                    None => Ok(current.clone()),
                },
            )
            .await?;
        Ok((false, updated))
    }
}

fn apply_error(err: ApplyError) -> ApiError {
    match err {
        ApplyError::BadRequest(message) => ApiError::bad_request(message),
        ApplyError::Conflicts(conflicts) => {
            let causes = conflicts
                .iter()
                .map(|(manager, path)| {
                    Cause::new("FieldManagerConflict", path, format!("conflict with {manager}"))
                })
                .collect();
            ApiError::apply_conflict(ApplyError::conflict_message(&conflicts), causes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_bodies_are_json_or_yaml() {
        let json = decode_config(br#"{"apiVersion":"v1","kind":"ConfigMap"}"#).unwrap();
        let yaml = decode_config(b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"1\"\n").unwrap();
        assert_eq!(json["kind"], "ConfigMap");
        assert_eq!(yaml["data"]["a"], "1");
        let err = decode_config(b"a: [").unwrap_err();
        assert!(err.message.starts_with("error decoding YAML"), "{}", err.message);
    }
}
