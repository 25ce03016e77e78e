//! The create-only "review" resources, answered from the request's identity instead of stored:
//! SelfSubjectReview (`kubectl auth whoami`), SelfSubjectAccessReview / SubjectAccessReview /
//! LocalSubjectAccessReview (`kubectl auth can-i`), SelfSubjectRulesReview (`auth can-i --list`)
//! and TokenReview. Authorization is not enforced yet (RBAC comes later): every authenticated
//! user may do everything, and the reviews say so.

use apimachinery::resources::ResourceDef;
use apimachinery::status::ApiError;
use serde_json::{Value, json};

use crate::authn::Tokens;
use crate::pki::UserInfo;

/// Why every access review is allowed for now.
const ALLOWED_REASON: &str = "rkube does not enforce authorization yet: every authenticated user is allowed";

/// Upstream's userInfo of an authenticated user (every one is in `system:authenticated`).
fn user_info(user: &UserInfo) -> Value {
    let mut groups = user.groups.clone();
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    let mut info = json!({"username": user.name, "groups": groups});
    if let Some(uid) = &user.uid {
        info["uid"] = uid.as_str().into();
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}

/// What the service-account authenticator made of a TokenReview's token: `None` when it is
/// not a service-account token, else the user and the audiences it was accepted for, or why not.
pub type AccountReview = Option<Result<(UserInfo, Vec<String>), String>>;

/// Answers a review `body` (already decoded) posted by `user`.
pub fn review(
    def: &ResourceDef,
    user: &UserInfo,
    tokens: &Tokens,
    mut body: Value,
    account: AccountReview,
) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    body["apiVersion"] = def.api_version().into();
    body["kind"] = def.kind.into();
    if !body["metadata"].is_object() {
        body["metadata"] = json!({});
    }
    body["metadata"]["creationTimestamp"] = Value::Null;
    let status = match def.plural {
        "selfsubjectreviews" => json!({"userInfo": user_info(user)}),
        "selfsubjectaccessreviews" | "subjectaccessreviews" | "localsubjectaccessreviews" => {
            json!({"allowed": true, "reason": ALLOWED_REASON})
        }
        "selfsubjectrulesreviews" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        "tokenreviews" => {
            let token = body["spec"]["token"].as_str().unwrap_or_default();
            match (tokens.authenticate(Some(&format!("Bearer {token}"))), account) {
                (Some(user), _) => json!({"authenticated": true, "user": user_info(user)}),
                (None, Some(Ok((user, audiences)))) => {
                    json!({"authenticated": true, "user": user_info(&user), "audiences": audiences})
                }
                (None, Some(Err(reason))) => json!({"authenticated": false, "error": reason}),
                (None, None) => json!({"authenticated": false, "error": "invalid bearer token"}),
            }
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    body["status"] = status;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources::find;

    fn admin() -> UserInfo {
        UserInfo {
            name: "system:admin".into(),
            groups: vec!["system:masters".into()],
            ..UserInfo::default()
        }
    }

    #[test]
    fn whoami_names_the_user_and_groups() {
        let def = find("authentication.k8s.io", "v1", "selfsubjectreviews").unwrap();
        let review = review(def, &admin(), &Tokens::default(), json!({}), None).unwrap();
        assert_eq!(
            review["status"]["userInfo"],
            json!({"username": "system:admin", "groups": ["system:masters", "system:authenticated"]})
        );
        assert_eq!(review["kind"], "SelfSubjectReview");
    }

    #[test]
    fn access_and_token_reviews() {
        let def = find("authorization.k8s.io", "v1", "selfsubjectaccessreviews").unwrap();
        let body = json!({"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}});
        let answered = review(def, &admin(), &Tokens::default(), body, None).unwrap();
        assert_eq!(answered["status"]["allowed"], true);
        assert_eq!(answered["spec"]["resourceAttributes"]["verb"], "get");
        let def = find("authentication.k8s.io", "v1", "tokenreviews").unwrap();
        let tokens = Tokens::parse("t0k3n,bob,1\n").unwrap();
        let ok = review(def, &admin(), &tokens, json!({"spec": {"token": "t0k3n"}}), None).unwrap();
        assert_eq!(ok["status"]["user"]["username"], "bob");
        let bad = review(def, &admin(), &tokens, json!({"spec": {"token": "nope"}}), None).unwrap();
        assert_eq!(bad["status"]["authenticated"], false);
    }
}
