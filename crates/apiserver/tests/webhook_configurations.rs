//! admissionregistration.k8s.io/v1 webhook configurations through kube-rs: stored with
//! upstream's defaults and refused with upstream's validation messages.

mod common;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Client, Error};
use serde_json::json;

use common::start;

fn api(client: Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    Api::all_with(client, &ApiResource::from_gvk_with_plural(&gvk, plural))
}

fn api_error(err: Error) -> kube::core::Status {
    match err {
        Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_configurations_are_defaulted_and_validated() {
    let (client, _server, _dir) = start().await;
    let mutating = api(
        client.clone(),
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
    );
    let pp = PostParams::default();
    let config: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "labeler"},
        "webhooks": [{
            "name": "labeler.example.com",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"namespace": "default", "name": "labeler"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
        }],
    }))
    .unwrap();
    mutating.create(&pp, &config).await.unwrap();
    let hook = &mutating.get("labeler").await.unwrap().data["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["matchPolicy"], "Equivalent");
    assert_eq!(hook["namespaceSelector"], json!({}));
    assert_eq!(hook["objectSelector"], json!({}));
    assert_eq!(hook["timeoutSeconds"], 10);
    assert_eq!(hook["reinvocationPolicy"], "Never");
    assert_eq!(hook["rules"][0]["scope"], "*");
    assert_eq!(hook["clientConfig"]["service"]["port"], 443);

    let validating = api(
        client,
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
    );
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "bad"},
        "webhooks": [
            {"name": "hook", "timeoutSeconds": 31, "clientConfig": {"url": "http://example.com/x?a=b"}},
            {"name": "a.b.c", "sideEffects": "Some", "admissionReviewVersions": ["v1"], "clientConfig": {}},
            {"name": "a.b.c", "sideEffects": "None", "admissionReviewVersions": ["v1"],
             "clientConfig": {"url": "https://example.com"},
             "rules": [{"operations": ["*", "CREATE"], "apiGroups": ["*"], "apiVersions": ["v1"], "resources": ["*/*", "pods"]}]},
        ],
    }))
    .unwrap();
    let invalid = api_error(validating.create(&pp, &bad).await.unwrap_err());
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        invalid.message,
        "ValidatingWebhookConfiguration.admissionregistration.k8s.io \"bad\" is invalid: [\
         webhooks[0].name: Invalid value: \"hook\": should be a domain with at least three segments separated by dots, \
         webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun, \
         webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds, \
         webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path], \
         webhooks[0].clientConfig.url: Invalid value: \"a=b\": query parameters are not permitted in the URL, \
         webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1, \
         webhooks[1].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\", \
         webhooks[1].clientConfig: Required value: exactly one of url or service is required, \
         webhooks[2].name: Duplicate value: \"a.b.c\", \
         webhooks[2].rules[0].operations: Invalid value: []string{\"*\", \"CREATE\"}: if '*' is present, must not specify other operations, \
         webhooks[2].rules[0].resources: Invalid value: []string{\"*/*\", \"pods\"}: if '*/*' is present, must not specify other resources]"
    );
}
