//! certificates.k8s.io/v1 CertificateSigningRequests as upstream's registry strategies
//! (pkg/registry/certificates/certificates): the requester's identity is recorded on create,
//! the spec never changes afterwards, `/approval` writes only the conditions, `/status` cannot
//! touch the Approved / Denied conditions, and condition timestamps are filled in. Validation
//! follows pkg/apis/certificates/validation. No signer runs: approved requests stay unsigned.

use apimachinery::resources::ResourceDef;
use base64::Engine;
use serde_json::{Value, json};

use crate::objects;
use crate::pki::UserInfo;
use crate::validation::Errs;

pub fn is_csr(def: &ResourceDef) -> bool {
    (def.group, def.plural) == ("certificates.k8s.io", "certificatesigningrequests")
}

/// Records who asks (upstream's PrepareForCreate: username, uid, groups, extra of the request's
/// user, replacing whatever the client put there).
pub fn record_requester(obj: &mut Value, user: &UserInfo) {
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    let spec = obj["spec"].as_object_mut().expect("spec is an object");
    for field in ["username", "uid", "groups", "extra"] {
        spec.remove(field);
    }
    spec.insert("username".into(), user.name.clone().into());
    if let Some(uid) = &user.uid {
        spec.insert("uid".into(), uid.clone().into());
    }
    let mut groups = user.groups.clone();
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    spec.insert("groups".into(), json!(groups));
    if !user.extra.is_empty() {
        spec.insert("extra".into(), json!(user.extra));
    }
}

/// The status a new request starts with: none (upstream resets it).
pub fn prepare_for_create(obj: &mut Value) {
    obj["status"] = json!({});
    populate_condition_timestamps(obj, None);
}

/// The new state of an `/approval` write: the current object with the written conditions.
pub fn merge_approval(current: &Value, written: &Value) -> Value {
    let mut updated = current.clone();
    if !updated["status"].is_object() {
        updated["status"] = json!({});
    }
    let status = updated["status"].as_object_mut().expect("status is an object");
    match written["status"].get("conditions") {
        Some(conditions) if !conditions.is_null() => {
            status.insert("conditions".into(), conditions.clone());
        }
        _ => {
            status.remove("conditions");
        }
    }
    updated
}

/// Upstream's PrepareForUpdate of the three strategies, after the generic merge: the spec is
/// never changed; a `/status` write keeps the approval conditions as they were.
pub fn prepare_for_update(subresource: Option<&str>, old: &Value, new: &mut Value) {
    new["spec"] = old["spec"].clone();
    if subresource == Some("status") {
        let is_approval = |c: &&Value| matches!(c["type"].as_str(), Some("Approved" | "Denied"));
        let kept_old = old["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(is_approval);
        let mut conditions: Vec<Value> = new["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| !is_approval(c))
            .cloned()
            .collect();
        conditions.extend(kept_old.cloned());
        if conditions.is_empty() {
            if let Some(status) = new["status"].as_object_mut() {
                status.remove("conditions");
            }
        } else {
            new["status"]["conditions"] = Value::Array(conditions);
        }
    }
    populate_condition_timestamps(new, Some(old));
}

/// lastUpdateTime defaults to now; lastTransitionTime to the old condition's of the same type
/// and status, else now.
fn populate_condition_timestamps(obj: &mut Value, old: Option<&Value>) {
    let now = objects::now_rfc3339();
    let Some(conditions) = obj
        .get_mut("status")
        .and_then(|s| s.get_mut("conditions"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for condition in conditions {
        if is_unset(&condition["lastUpdateTime"]) {
            condition["lastUpdateTime"] = now.clone().into();
        }
        if is_unset(&condition["lastTransitionTime"]) {
            let previous = old
                .and_then(|o| o["status"]["conditions"].as_array())
                .into_iter()
                .flatten()
                .find(|c| c["type"] == condition["type"])
                .filter(|c| c["status"] == condition["status"] && !is_unset(&c["lastTransitionTime"]))
                .map(|c| c["lastTransitionTime"].clone());
            condition["lastTransitionTime"] = previous.unwrap_or_else(|| now.clone().into());
        }
    }
}

fn is_unset(v: &Value) -> bool {
    v.is_null() || v.as_str() == Some("")
}

/// Key usages upstream accepts (certificates.KeyUsage values).
const USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// Validates a request (upstream's ValidateCertificateSigningRequest{Create,Update}).
pub(crate) fn validate(obj: &Value, errs: &mut Errs) {
    let spec = &obj["spec"];
    if let Err(why) = check_request(spec["request"].as_str().unwrap_or("")) {
        errs.invalid_repr(
            "spec.request",
            &go_bytes(spec["request"].as_str().unwrap_or("")),
            why,
        );
    }
    let usages = spec["usages"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if usages.is_empty() {
        errs.required("spec.usages");
    }
    let mut seen = Vec::new();
    for (i, usage) in usages.iter().enumerate() {
        let path = format!("spec.usages[{i}]");
        if !usage.as_str().is_some_and(|u| USAGES.contains(&u)) {
            errs.not_supported(&path, usage, USAGES);
        }
        if seen.contains(&usage) {
            errs.duplicate(&path, &format!("{usage}"));
        }
        seen.push(usage);
    }
    signer_name(spec["signerName"].as_str().unwrap_or(""), errs);
    if let Some(seconds) = spec["expirationSeconds"].as_i64()
        && seconds < 600
    {
        errs.invalid(
            "spec.expirationSeconds",
            &seconds.into(),
            "may not specify a duration less than 600 seconds (10 minutes)",
        );
    }
    let mut types = Vec::new();
    for (i, condition) in obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("status.conditions[{i}]");
        let kind = condition["type"].as_str().unwrap_or("");
        if kind.is_empty() {
            errs.required(&format!("{path}.type"));
        } else if types.contains(&kind) {
            errs.duplicate(&format!("{path}.type"), &format!("{kind:?}"));
        }
        types.push(kind);
        match condition["status"].as_str().unwrap_or("") {
            "" => errs.required(&format!("{path}.status")),
            "True" | "False" | "Unknown" => {}
            _ => errs.not_supported(
                &format!("{path}.status"),
                &condition["status"],
                &["False", "True", "Unknown"],
            ),
        }
    }
}

/// `spec.request` is a PEM `CERTIFICATE REQUEST` block (base64 in JSON, as any `[]byte`).
fn check_request(encoded: &str) -> Result<(), &'static str> {
    const WRONG_TYPE: &str = "PEM block type must be CERTIFICATE REQUEST";
    let pem = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| WRONG_TYPE)?;
    let text = String::from_utf8_lossy(&pem);
    let Some(start) = text.find("-----BEGIN ") else {
        return Err(WRONG_TYPE);
    };
    let rest = &text[start + "-----BEGIN ".len()..];
    let Some(label_end) = rest.find("-----") else {
        return Err(WRONG_TYPE);
    };
    let label = &rest[..label_end];
    let body = &rest[label_end + 5..];
    let Some(end) = body.find(&format!("-----END {label}-----")) else {
        return Err(WRONG_TYPE);
    };
    if label != "CERTIFICATE REQUEST" {
        return Err(WRONG_TYPE);
    }
    let der: String = body[..end].split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .map_err(|_| WRONG_TYPE)?;
    use x509_parser::prelude::FromDer;
    match x509_parser::certification_request::X509CertificationRequest::from_der(&der) {
        Ok((_, request)) if request.verify_signature().is_ok() => Ok(()),
        Ok(_) => Err("x509: ECDSA verification failure"),
        Err(_) => Err("x509: malformed certificate request"),
    }
}

/// A `[]byte` as Go's `%#v` prints it in a field error.
fn go_bytes(encoded: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_default();
    let items: Vec<String> = bytes.iter().map(|b| format!("0x{b:x}")).collect();
    format!("[]byte{{{}}}", items.join(", "))
}

/// Upstream's ValidateSignerName, in short: required, a domain and a path.
fn signer_name(name: &str, errs: &mut Errs) {
    if name.is_empty() {
        errs.required("spec.signerName");
        return;
    }
    let (domain, path) = name.split_once('/').unwrap_or((name, ""));
    if path.is_empty() || !domain.contains('.') {
        errs.invalid(
            "spec.signerName",
            &name.into(),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr() -> Value {
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = rcgen::CertificateParams::new(vec!["c".to_owned()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let request = base64::engine::general_purpose::STANDARD.encode(pem);
        json!({"metadata": {"name": "c"}, "spec": {"request": request,
            "signerName": "example.com/signer", "usages": ["client auth"]}})
    }

    fn causes(obj: &Value) -> Vec<String> {
        let mut errs = Errs::default();
        validate(obj, &mut errs);
        errs.0
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn a_well_formed_request_is_valid() {
        assert_eq!(causes(&csr()), Vec::<String>::new());
    }

    #[test]
    fn rejects_missing_fields_and_bad_values() {
        let mut obj = csr();
        obj["spec"]["request"] = base64::engine::general_purpose::STANDARD
            .encode("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n")
            .into();
        obj["spec"]["usages"] = json!(["client auth", "client auth", "flying"]);
        obj["spec"]["signerName"] = "signer".into();
        obj["spec"]["expirationSeconds"] = 60.into();
        obj["status"] = json!({"conditions": [{"type": "Approved"}, {"type": "Approved", "status": "Yes"}]});
        let found = causes(&obj);
        assert!(
            found[0].starts_with("spec.request: Invalid value: []byte{0x2d, 0x2d"),
            "{found:?}"
        );
        assert!(found[0].ends_with(": PEM block type must be CERTIFICATE REQUEST"));
        assert_eq!(
            &found[1..],
            [
                "spec.usages[1]: Duplicate value: \"client auth\"",
                "spec.usages[2]: Unsupported value: \"flying\": supported values: \"any\", \"cert sign\", \"client auth\", \"code signing\", \"content commitment\", \"crl sign\", \"data encipherment\", \"decipher only\", \"digital signature\", \"email protection\", \"encipher only\", \"ipsec end system\", \"ipsec tunnel\", \"ipsec user\", \"key agreement\", \"key encipherment\", \"microsoft sgc\", \"netscape sgc\", \"ocsp signing\", \"s/mime\", \"server auth\", \"signing\", \"timestamping\"",
                "spec.signerName: Invalid value: \"signer\": must be a fully qualified domain and path of the form 'example.com/signer-name'",
                "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)",
                "status.conditions[0].status: Required value",
                "status.conditions[1].type: Duplicate value: \"Approved\"",
                "status.conditions[1].status: Unsupported value: \"Yes\": supported values: \"False\", \"True\", \"Unknown\"",
            ]
        );
    }

    #[test]
    fn status_writes_keep_approval_conditions_and_spec() {
        let mut old = csr();
        old["status"] = json!({"conditions": [{"type": "Approved", "status": "True",
            "lastUpdateTime": "2020-01-01T00:00:00Z", "lastTransitionTime": "2020-01-01T00:00:00Z"}]});
        let mut new = old.clone();
        new["spec"]["signerName"] = "example.com/other".into();
        new["status"] = json!({"conditions": [{"type": "Denied", "status": "True"},
            {"type": "Failed", "status": "True"}], "certificate": "Y2VydA=="});
        prepare_for_update(Some("status"), &old, &mut new);
        assert_eq!(new["spec"], old["spec"]);
        let types: Vec<&str> = new["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["Failed", "Approved"]);
        assert!(new["status"]["conditions"][0]["lastTransitionTime"].is_string());
        assert_eq!(new["status"]["certificate"], "Y2VydA==");
    }

    #[test]
    fn approval_writes_only_the_conditions() {
        let mut current = csr();
        current["status"] = json!({"certificate": "Y2VydA=="});
        let written = json!({"spec": {}, "status": {"certificate": "", "conditions": [{"type": "Approved", "status": "True"}]}});
        let mut updated = merge_approval(&current, &written);
        prepare_for_update(Some("approval"), &current, &mut updated);
        assert_eq!(updated["spec"], current["spec"]);
        assert_eq!(updated["status"]["certificate"], "Y2VydA==");
        assert_eq!(updated["status"]["conditions"][0]["type"], "Approved");
        assert!(updated["status"]["conditions"][0]["lastUpdateTime"].is_string());
    }
}
