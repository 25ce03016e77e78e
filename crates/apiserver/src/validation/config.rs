//! ConfigMaps and Secrets: key syntax, sizes, Secret types' required keys, immutability.

use serde_json::Value;

use super::Errs;

/// Upstream's limit on a ConfigMap's or Secret's data (1 MiB).
const MAX_SIZE: usize = 1024 * 1024;

const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// Upstream's `IsConfigMapKey`.
fn config_key(key: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if key.len() > 253 {
        msgs.push("must be no more than 253 characters".to_owned());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        msgs.push(KEY_MSG.to_owned());
    }
    if key == "." {
        msgs.push("must not be '.'".to_owned());
    } else if key == ".." {
        msgs.push("must not be '..'".to_owned());
    } else if key.starts_with("..") {
        msgs.push("must not start with '..'".to_owned());
    }
    msgs
}

/// The keys of `bag` (`data`, `binaryData`, `stringData`), their syntax and total size.
fn keys(obj: &Value, bag: &str, other: Option<&str>, errs: &mut Errs) -> usize {
    let mut size = 0;
    for (key, value) in obj[bag].as_object().into_iter().flatten() {
        let path = format!("{bag}[{key}]");
        for msg in config_key(key) {
            errs.invalid(&path, &Value::String(key.clone()), &msg);
        }
        if let Some(other) = other
            && obj[other].get(key).is_some()
        {
            errs.invalid(
                &path,
                &Value::String(key.clone()),
                &format!("duplicate of key present in {other}"),
            );
        }
        size += value.as_str().map_or(0, str::len);
    }
    size
}

fn immutable_data(obj: &Value, old: Option<&Value>, bags: &[&str], errs: &mut Errs) {
    let Some(old) = old else {
        return;
    };
    if old["immutable"].as_bool() == Some(true) {
        for bag in bags {
            if obj[*bag] != old[*bag] {
                errs.forbidden(bag, "field is immutable when `immutable` is set");
            }
        }
        if obj["immutable"] != old["immutable"] {
            errs.forbidden("immutable", "field is immutable when `immutable` is set");
        }
    }
}

pub fn config_map(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let size = keys(obj, "data", Some("binaryData"), errs) + keys(obj, "binaryData", None, errs) * 3 / 4;
    if size > MAX_SIZE {
        errs.too_long("", MAX_SIZE);
    }
    immutable_data(obj, old, &["data", "binaryData"], errs);
}

pub fn secret(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    // Secret data is base64: the size limit is on the decoded bytes.
    let size = keys(obj, "data", None, errs) * 3 / 4;
    if size > MAX_SIZE {
        errs.too_long("data", MAX_SIZE);
    }
    let has = |key: &str| obj["data"].get(key).is_some();
    match obj["type"].as_str().unwrap_or_default() {
        "kubernetes.io/tls" => {
            for key in ["tls.key", "tls.crt"] {
                if !has(key) {
                    errs.required(&format!("data[{key}]"));
                }
            }
        }
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            errs.required("data[.dockerconfigjson]")
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => errs.required("data[.dockercfg]"),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.required("data[username]");
            errs.required("data[password]");
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => errs.required("data[ssh-privatekey]"),
        "kubernetes.io/service-account-token"
            if obj["metadata"]["annotations"]["kubernetes.io/service-account.name"]
                .as_str()
                .is_none_or(str::is_empty) =>
        {
            errs.required("metadata.annotations[kubernetes.io/service-account.name]");
        }
        _ => {}
    }
    if let Some(old) = old {
        errs.immutable("type", &obj["type"], &old["type"], |v| {
            format!("{:?}", v.as_str().unwrap_or_default())
        });
    }
    immutable_data(obj, old, &["data"], errs);
}
