//! apiregistration.k8s.io/v1 APIServices through kube-rs: stored, defaulted and validated as
//! kube-aggregator does (the Python client's `create_from_yaml` creates one and expects a 409
//! `AlreadyExists` on the second create).

mod common;

use kube::Error;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

use common::start;

fn api_service(name: &str, version: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": name},
        "spec": {
            "group": "metrics.example.org",
            "version": version,
            "groupPriorityMinimum": 500,
            "versionPriority": 20,
            "insecureSkipTLSVerify": true,
            "service": {"namespace": "monitoring", "name": "metrics"},
        },
    }))
    .unwrap()
}

fn api_error(err: Error) -> kube::core::Status {
    match err {
        Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_services_are_stored_defaulted_and_validated() {
    let (client, _server, _dir) = start().await;
    let gvk = GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "apiservices");
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let pp = PostParams::default();

    let name = "v1beta2.metrics.example.org";
    api.create(&pp, &api_service(name, "v1beta2")).await.unwrap();
    let got = api.get(name).await.unwrap();
    assert_eq!(got.data["spec"]["group"], "metrics.example.org");
    assert_eq!(got.data["spec"]["version"], "v1beta2");
    assert_eq!(got.data["spec"]["service"]["port"], 443, "defaulted port");

    let conflict = api_error(api.create(&pp, &api_service(name, "v1beta2")).await.unwrap_err());
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(
        conflict.message,
        format!("apiservices.apiregistration.k8s.io \"{name}\" already exists")
    );

    // The name must be `<version>.<group>`; priorities must be in range.
    let mut wrong = api_service("v1.metrics.example.org", "v1beta2");
    wrong.data["spec"]["versionPriority"] = json!(0);
    let invalid = api_error(api.create(&pp, &wrong).await.unwrap_err());
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        invalid.message,
        "APIService.apiregistration.k8s.io \"v1.metrics.example.org\" is invalid: [\
         metadata.name: Invalid value: \"v1.metrics.example.org\": must be \
         `spec.version+\".\"+spec.group`: \"v1beta2.metrics.example.org\", \
         spec.versionPriority: Invalid value: 0: must be positive and less than 1000]"
    );

    api.delete(name, &DeleteParams::default()).await.unwrap();
    let gone = api_error(api.get(name).await.unwrap_err());
    assert_eq!(gone.code, 404);
}
