//! API errors as Kubernetes `Status` objects: the code, reason, message wording and details
//! upstream's apiserver returns (k8s.io/apimachinery/pkg/api/errors), so that clients that
//! branch on `reason` (kubectl, client-go's `IsNotFound`, `IsConflict` …) behave identically.

use serde_json::{Value, json};

/// One field-level cause of an `Invalid` (or other) error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// Upstream's `CauseType`, e.g. `FieldValueRequired`, `FieldValueInvalid`.
    pub reason: String,
    pub message: String,
    /// The field path, e.g. `spec.containers[0].image`.
    pub field: String,
}

impl Cause {
    pub fn new(reason: &str, field: &str, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.to_owned(),
            message: message.into(),
            field: field.to_owned(),
        }
    }
    /// `field: Required value` (upstream's `field.Required`).
    pub fn required(field: &str) -> Self {
        Cause::new("FieldValueRequired", field, "Required value")
    }
    /// `field: Invalid value: "x": detail` (upstream's `field.Invalid`).
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {shown}: {detail}"),
        )
    }
    /// `field: Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Cause::new(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        )
    }
    /// `field: Forbidden: detail`.
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Cause::new("FieldValueForbidden", field, format!("Forbidden: {detail}"))
    }
    /// `field: Duplicate value: x`.
    pub fn duplicate(field: &str, value: &Value) -> Self {
        Cause::new("FieldValueDuplicate", field, format!("Duplicate value: {value}"))
    }
}

/// A failed API request, rendered as a `Status` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// Boxed: errors travel in `Result`s everywhere, and most have no details.
    pub details: Option<Box<Details>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    pub name: String,
    pub group: String,
    /// For most errors the resource (plural); for `Invalid` the kind, as upstream.
    pub kind: String,
    pub causes: Vec<Cause>,
    pub retry_after_seconds: Option<u32>,
}

/// A group and resource, as upstream's `schema.GroupResource`, printed `pods` or `deployments.apps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupResource<'a> {
    pub group: &'a str,
    pub resource: &'a str,
}

impl std::fmt::Display for GroupResource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, gr: GroupResource<'_>, name: &str) -> Self {
        self.details = Some(Box::new(Details {
            name: name.to_owned(),
            group: gr.group.to_owned(),
            kind: gr.resource.to_owned(),
            ..Details::default()
        }));
        self
    }

    pub fn not_found(gr: GroupResource<'_>, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{gr} {name:?} not found")).with_details(gr, name)
    }

    pub fn already_exists(gr: GroupResource<'_>, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{gr} {name:?} already exists")).with_details(gr, name)
    }

    /// A stale `resourceVersion` on update or a failed precondition.
    pub fn conflict(gr: GroupResource<'_>, name: &str, detail: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {gr} {name:?}: {detail}"),
        )
        .with_details(gr, name)
    }

    /// The wording upstream uses for an update with a stale `resourceVersion`.
    pub fn stale(gr: GroupResource<'_>, name: &str) -> Self {
        Self::conflict(
            gr,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with field causes: `Kind "name" is invalid: <causes>`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let list = match rendered.len() {
            1 => rendered[0].clone(),
            _ => format!("[{}]", rendered.join(", ")),
        };
        let qualified = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let mut err = Self::new(422, "Invalid", format!("{qualified} {name:?} is invalid: {list}"));
        err.details = Some(Box::new(Details {
            name: name.to_owned(),
            group: group.to_owned(),
            kind: kind.to_owned(),
            causes,
            retry_after_seconds: None,
        }));
        err
    }

    /// 409 for a server-side apply that would change fields other managers own, with one
    /// `FieldManagerConflict` cause per field (upstream's NewApplyConflict).
    pub fn apply_conflict(message: impl Into<String>, causes: Vec<Cause>) -> Self {
        let mut err = Self::new(409, "Conflict", message);
        err.details = Some(Box::new(Details {
            causes,
            ..Details::default()
        }));
        err
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// An error upstream's handlers return as a plain Go error: 500 without a reason, the error
    /// text as the message (upstream's `ErrorToAPIStatus` fallback).
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }

    /// 422 as upstream's `NewGenericServerResponse` words it (strategic merge patch errors such
    /// as lists of lists); upstream drops the underlying message.
    pub fn unprocessable() -> Self {
        let mut err = Self::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        );
        err.details = Some(Box::default());
        err
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// A path the server does not serve.
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// The requested resourceVersion is older than the history the server keeps.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// Forbidden for one object, with its name and resource in the details (admission's
    /// `NewForbidden`).
    pub fn forbidden_object(gr: GroupResource<'_>, name: &str, message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message).with_details(gr, name)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"
            ),
        )
    }

    /// 415 with a specific reason (e.g. a kind that cannot be decoded from protobuf yet).
    pub fn unsupported_media_type_because(message: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }

    /// Upstream's `NewServiceUnavailable`: 503 without a retry hint.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// The datastore cannot serve now; clients retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut err = Self::new(503, "ServiceUnavailable", message);
        err.details = Some(Box::new(Details {
            retry_after_seconds: Some(1),
            ..Details::default()
        }));
        err
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty() {
            // Upstream omits an unknown reason (`omitempty`).
            status.as_object_mut().map(|s| s.remove("reason"));
        }
        if let Some(d) = &self.details {
            let mut details = serde_json::Map::new();
            if !d.name.is_empty() {
                details.insert("name".into(), d.name.clone().into());
            }
            if !d.group.is_empty() {
                details.insert("group".into(), d.group.clone().into());
            }
            if !d.kind.is_empty() {
                details.insert("kind".into(), d.kind.clone().into());
            }
            if !d.causes.is_empty() {
                let causes: Vec<Value> = d
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                details.insert("causes".into(), causes.into());
            }
            if let Some(seconds) = d.retry_after_seconds {
                details.insert("retryAfterSeconds".into(), seconds.into());
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// A failure `Status` in the field order of upstream's Go struct (serde_json maps sort keys),
/// which clients that print the raw body show verbatim (the Python client's
/// `FailToCreateError` text).
#[derive(serde::Serialize)]
struct WireStatus<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: serde_json::Map<String, Value>,
    status: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<WireDetails<'a>>,
    code: u16,
}

#[derive(serde::Serialize)]
struct WireDetails<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    causes: Vec<WireCause<'a>>,
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<u32>,
}

#[derive(serde::Serialize)]
struct WireCause<'a> {
    reason: &'a str,
    message: &'a str,
    field: &'a str,
}

impl ApiError {
    /// The `Status` as upstream writes it in a response body: Go's field order and the
    /// newline its JSON encoder ends a value with.
    pub fn to_status_bytes(&self) -> Vec<u8> {
        let details = self.details.as_deref().map(|d| WireDetails {
            name: &d.name,
            group: &d.group,
            kind: &d.kind,
            causes: d
                .causes
                .iter()
                .map(|c| WireCause {
                    reason: &c.reason,
                    message: &c.message,
                    field: &c.field,
                })
                .collect(),
            retry_after_seconds: d.retry_after_seconds,
        });
        let wire = WireStatus {
            kind: "Status",
            api_version: "v1",
            metadata: serde_json::Map::new(),
            status: "Failure",
            message: &self.message,
            reason: self.reason,
            details,
            code: self.code,
        };
        let mut bytes = serde_json::to_vec(&wire).expect("a Status serializes");
        bytes.push(b'\n');
        bytes
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The `Status` of a successful delete of a collection or an object deleted at once
/// (`{"status": "Success", "details": {...}}`).
pub fn success(gr: GroupResource<'_>, name: &str, uid: Option<&str>) -> Value {
    let mut details = json!({"name": name, "kind": gr.resource});
    if !gr.group.is_empty() {
        details["group"] = gr.group.into();
    }
    if let Some(uid) = uid {
        details["uid"] = uid.into();
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_body_in_upstreams_field_order() {
        let err = ApiError::already_exists(
            GroupResource {
                group: "apps",
                resource: "deployments",
            },
            "web",
        );
        assert_eq!(
            String::from_utf8(err.to_status_bytes()).unwrap(),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\
             \"message\":\"deployments.apps \\\"web\\\" already exists\",\"reason\":\"AlreadyExists\",\
             \"details\":{\"name\":\"web\",\"group\":\"apps\",\"kind\":\"deployments\"},\"code\":409}\n"
        );
    }

    const PODS: GroupResource<'static> = GroupResource {
        group: "",
        resource: "pods",
    };
    const DEPLOYMENTS: GroupResource<'static> = GroupResource {
        group: "apps",
        resource: "deployments",
    };

    #[test]
    fn not_found_reads_as_upstream() {
        let status = ApiError::not_found(DEPLOYMENTS, "web").to_status();
        assert_eq!(
            status,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "deployments.apps \"web\" not found", "reason": "NotFound",
                "details": {"name": "web", "group": "apps", "kind": "deployments"}, "code": 404
            })
        );
    }

    #[test]
    fn plain_errors_and_generic_unprocessable_read_as_upstream() {
        assert_eq!(
            ApiError::unknown("map: map[image:b] does not contain declared merge key: name").to_status(),
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "map: map[image:b] does not contain declared merge key: name",
                "code": 500
            })
        );
        assert_eq!(
            ApiError::unprocessable().to_status(),
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server rejected our request due to an error in our request",
                "reason": "Invalid", "details": {}, "code": 422
            })
        );
    }

    #[test]
    fn conflict_and_already_exists() {
        let stale = ApiError::stale(PODS, "p");
        assert_eq!(stale.code, 409);
        assert_eq!(
            stale.message,
            "Operation cannot be fulfilled on pods \"p\": the object has been modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(
            ApiError::already_exists(PODS, "p").message,
            "pods \"p\" already exists"
        );
    }

    #[test]
    fn invalid_lists_causes_like_upstream() {
        let one = ApiError::invalid("", "Pod", "p", vec![Cause::required("spec.containers")]);
        assert_eq!(
            one.message,
            "Pod \"p\" is invalid: spec.containers: Required value"
        );
        let two = ApiError::invalid(
            "apps",
            "Deployment",
            "d",
            vec![
                Cause::required("spec.selector"),
                Cause::invalid("spec.replicas", &json!(-1), "must be greater than or equal to 0"),
            ],
        );
        assert_eq!(
            two.message,
            "Deployment.apps \"d\" is invalid: [spec.selector: Required value, spec.replicas: Invalid value: -1: must be greater than or equal to 0]"
        );
        let status = two.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["kind"], "Deployment");
        assert_eq!(status["details"]["causes"][0]["reason"], "FieldValueRequired");
    }
}
