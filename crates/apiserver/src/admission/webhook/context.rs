//! What a webhook call needs from the HTTP request around it, without threading it through
//! every REST method: the authenticated user (AdmissionReview `userInfo`) in, the webhooks'
//! warnings (`Warning` headers) out. Set per request by the server with [`in_request`].

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use crate::pki::UserInfo;

#[derive(Default)]
struct RequestContext {
    user: Mutex<Value>,
    warnings: Mutex<Vec<String>>,
}

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// Runs one request's handling; returns what it returned and the webhooks' warnings.
pub async fn in_request<F: std::future::Future>(f: F) -> (F::Output, Vec<String>) {
    let context = Arc::new(RequestContext::default());
    let out = REQUEST.scope(context.clone(), f).await;
    let warnings = std::mem::take(&mut *context.warnings.lock().expect("warnings lock"));
    (out, warnings)
}

/// Records the authenticated user, in upstream's `authentication.k8s.io/v1` UserInfo shape.
pub fn set_user(user: &UserInfo) {
    let mut info = Map::new();
    info.insert("username".into(), user.name.clone().into());
    if let Some(uid) = &user.uid {
        info.insert("uid".into(), uid.clone().into());
    }
    if !user.groups.is_empty() {
        info.insert("groups".into(), json!(user.groups));
    }
    if !user.extra.is_empty() {
        info.insert("extra".into(), json!(user.extra));
    }
    let _ = REQUEST.try_with(|c| *c.user.lock().expect("user lock") = Value::Object(info));
}

pub fn user() -> Value {
    REQUEST
        .try_with(|c| c.user.lock().expect("user lock").clone())
        .ok()
        .filter(|u| !u.is_null())
        .unwrap_or_else(|| json!({}))
}

pub fn warn(text: &str) {
    let _ = REQUEST.try_with(|c| c.warnings.lock().expect("warnings lock").push(text.to_owned()));
}
