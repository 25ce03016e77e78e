//! CustomResourceDefinitions driven by kube-rs, in process: a typed CRD, custom resources as
//! `DynamicObject`s (CRUD, schema errors, status and scale subresources, kube-runtime's
//! watcher), a cluster-scoped CRD, and a second API server on the same store that serves the
//! CRDs the first one created.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    ValidationDirective, WatchParams,
};
use kube::core::GroupVersionKind;
use kube::runtime::watcher;
use kube::{Client, Error};
use serde_json::json;

async fn serve(store: Arc<dyn store::Store>, dir: &std::path::Path) -> (apiserver::Running, Client) {
    let config = apiserver::Config::loopback(dir.to_owned());
    let server = apiserver::start(config, store).await.unwrap();
    let client = common::client_of(&server).await;
    (server, client)
}

fn crd(plural: &str, kind: &str, scope: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.example.com")},
        "spec": {
            "group": "example.com",
            "scope": scope,
            "names": {"plural": plural, "kind": kind},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "selectableFields": [{"jsonPath": ".spec.size"}],
                "subresources": {"status": {}, "scale": {
                    "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "replicas": {"type": "integer", "default": 1},
                        "size": {"type": "string", "enum": ["S", "M", "L"]}}},
                    "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
                }}}
            }]
        }
    }))
    .unwrap()
}

async fn established(crds: &Api<CustomResourceDefinition>, name: &str) {
    for _ in 0..100 {
        let crd = crds.get(name).await.unwrap();
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never became established");
}

fn resource(plural: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.com", "v1", kind), plural)
}

fn object(ar: &ApiResource, name: &str, spec: serde_json::Value) -> DynamicObject {
    let mut obj = DynamicObject::new(name, ar);
    obj.data = json!({"spec": spec});
    obj
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_through_kube_rs() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn store::Store> =
        Arc::new(store_sqlite::SqliteStore::open(dir.path().join("state.db")).unwrap());
    let (_server, client) = serve(store.clone(), &dir.path().join("a")).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds
        .create(&PostParams::default(), &crd("gadgets", "Gadget", "Namespaced"))
        .await
        .unwrap();
    assert_eq!(created.spec.names.singular.as_deref(), Some("gadget"));
    assert_eq!(created.spec.names.list_kind.as_deref(), Some("GadgetList"));
    established(&crds, "gadgets.example.com").await;

    let ar = resource("gadgets", "Gadget");
    let gadgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut events = watcher(gadgets.clone(), watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    let writer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let a = gadgets
            .create(&PostParams::default(), &object(&ar, "a", json!({"size": "S"})))
            .await
            .unwrap();
        assert_eq!(a.data["spec"], json!({"size": "S", "replicas": 1}), "defaulted");
        gadgets
            .patch(
                "a",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"size": "L"}})),
            )
            .await
            .unwrap();
        gadgets.delete("a", &DeleteParams::default()).await.unwrap();
    };
    let reader = async {
        while let Some(event) = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            let summary = match event {
                watcher::Event::Init | watcher::Event::InitDone | watcher::Event::InitApply(_) => continue,
                watcher::Event::Apply(o) => format!("apply {}", o.data["spec"]["size"]),
                watcher::Event::Delete(o) => format!("delete {}", o.metadata.name.unwrap()),
            };
            seen.push(summary);
            if seen.len() == 3 {
                break;
            }
        }
    };
    tokio::join!(writer, reader);
    assert_eq!(seen, ["apply \"S\"", "apply \"L\"", "delete a"]);

    // Schema violations are 422 Invalid with upstream's causes.
    let err = gadgets
        .create(&PostParams::default(), &object(&ar, "bad", json!({"size": "XL"})))
        .await
        .unwrap_err();
    let Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let causes = status.details.unwrap().causes;
    assert_eq!(causes[0].field, "spec.size");
    assert_eq!(causes[0].reason, "FieldValueNotSupported");

    // Status and scale subresources.
    gadgets
        .create(&PostParams::default(), &object(&ar, "b", json!({"replicas": 2})))
        .await
        .unwrap();
    let b = gadgets
        .patch_status(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(b.data["status"]["replicas"], 2);
    let scale = gadgets
        .patch_scale(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(4));
    assert_eq!(scale.status.unwrap().replicas, 2);
    let b = gadgets.get("b").await.unwrap();
    assert_eq!(b.data["spec"]["replicas"], 4);
    assert_eq!(b.metadata.generation, Some(2));

    // selectableFields may be used in field selectors; other fields may not.
    gadgets
        .create(&PostParams::default(), &object(&ar, "c", json!({"size": "M"})))
        .await
        .unwrap();
    let medium = gadgets
        .list(&ListParams::default().fields("spec.size=M"))
        .await
        .unwrap();
    let names: Vec<_> = medium
        .items
        .iter()
        .map(|o| o.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["c"]);
    // Items of custom resource lists carry their type (upstream's unstructured lists), also
    // when the watch cache serves the list.
    let cached = gadgets.list(&ListParams::default().match_any()).await.unwrap();
    let types = cached.items[0].types.clone().unwrap();
    assert_eq!(
        (types.api_version.as_str(), types.kind.as_str()),
        ("example.com/v1", "Gadget")
    );
    let err = gadgets
        .list(&ListParams::default().fields("spec.replicas=1"))
        .await
        .unwrap_err();
    let Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (status.code, status.message.as_str()),
        (400, "field label not supported: spec.replicas")
    );

    // A schema tightened later does not block unrelated changes (validation ratcheting): "c"
    // keeps its now unsupported size while its replicas change; a new bad value is refused.
    let mut tightened = serde_json::to_value(crds.get("gadgets.example.com").await.unwrap()).unwrap();
    tightened["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"]
        ["enum"] = json!(["S", "L"]);
    crds.replace(
        "gadgets.example.com",
        &PostParams::default(),
        &serde_json::from_value(tightened).unwrap(),
    )
    .await
    .unwrap();
    gadgets
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let err = gadgets
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": "XL"}})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api(s) if s.code == 422));

    // fieldValidation=Strict refuses what pruning would drop silently.
    let strict = PatchParams::default().validation(ValidationDirective::Strict);
    let err = gadgets
        .patch("b", &strict, &Patch::Merge(json!({"spec": {"color": "red"}})))
        .await
        .unwrap_err();
    let Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (status.code, status.message.as_str()),
        (
            400,
            "Gadget in version \"v1\" cannot be handled as a Gadget: strict decoding error: unknown field \"spec.color\""
        )
    );
    let pruned = gadgets
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "red"}})),
        )
        .await
        .unwrap();
    assert!(pruned.data["spec"].get("color").is_none(), "{:?}", pruned.data);

    // Server-side apply creates and updates custom resources; strict apply names unknown
    // fields as upstream's typed apply does.
    let apply = PatchParams::apply("kube-crd-test");
    let applied = gadgets
        .patch(
            "d",
            &apply,
            &Patch::Apply(json!({"apiVersion": "example.com/v1", "kind": "Gadget",
                "metadata": {"name": "d"}, "spec": {"size": "S"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["spec"], json!({"size": "S", "replicas": 1}));
    let err = gadgets
        .patch(
            "d",
            &apply.clone().validation(ValidationDirective::Strict),
            &Patch::Apply(json!({"apiVersion": "example.com/v1", "kind": "Gadget",
                "metadata": {"name": "d"}, "spec": {"size": "M", "color": "red"}})),
        )
        .await
        .unwrap_err();
    let Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 400);
    assert!(
        status
            .message
            .contains(".spec.color: field not declared in schema"),
        "{}",
        status.message
    );

    // A cluster-scoped CRD.
    crds.create(&PostParams::default(), &crd("globals", "Global", "Cluster"))
        .await
        .unwrap();
    established(&crds, "globals.example.com").await;
    let gar = resource("globals", "Global");
    let globals: Api<DynamicObject> = Api::all_with(client.clone(), &gar);
    globals
        .create(&PostParams::default(), &object(&gar, "g", json!({})))
        .await
        .unwrap();
    let list = globals.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.items[0].metadata.namespace.is_none());

    // A second server on the same store serves what the first created.
    let (_second, other) = serve(store, &dir.path().join("b")).await;
    let there: Api<DynamicObject> = Api::namespaced_with(other.clone(), "default", &ar);
    assert_eq!(there.get("b").await.unwrap().data["spec"]["replicas"], 4);

    // Deleting the CRD deletes its objects; the second server stops serving it too, and ends
    // the watches of it.
    let mut open_watch = there.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    crds.delete("gadgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while open_watch.next().await.is_some() {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the watch of a deleted CRD's resources did not end"
    );
    let mut gone = false;
    for _ in 0..100 {
        if matches!(there.list(&ListParams::default()).await, Err(Error::Api(s)) if s.code == 404) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the second server still serves gadgets");
    let keys = store_keys(&other, "gadgets").await;
    assert!(keys, "custom resources removed from the store");

    // A kind another CRD of the group has is not accepted (nor served) until that CRD goes.
    crds.create(&PostParams::default(), &crd("alphas", "Alpha", "Cluster"))
        .await
        .unwrap();
    let mut second = crd("betas", "Alpha", "Cluster");
    second.spec.names.list_kind = Some("BetaList".into());
    let second = crds.create(&PostParams::default(), &second).await.unwrap();
    let conditions = second.status.unwrap().conditions.unwrap();
    let names = conditions.iter().find(|c| c.type_ == "NamesAccepted").unwrap();
    assert_eq!(
        (
            names.status.as_str(),
            names.reason.as_deref(),
            names.message.as_deref()
        ),
        ("False", Some("KindConflict"), Some("\"Alpha\" is already in use"))
    );
    let betas: Api<DynamicObject> = Api::all_with(client.clone(), &resource("betas", "Alpha"));
    assert!(matches!(betas.list(&ListParams::default()).await, Err(Error::Api(s)) if s.code == 404));
    crds.delete("alphas.example.com", &DeleteParams::default())
        .await
        .unwrap();
    established(&crds, "betas.example.com").await;
    assert!(betas.list(&ListParams::default()).await.unwrap().items.is_empty());
}

/// Whether nothing of `plural` is left: re-creating the CRD lists no objects.
async fn store_keys(client: &Client, plural: &str) -> bool {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for _ in 0..100 {
        if crds
            .get_opt(&format!("{plural}.example.com"))
            .await
            .unwrap()
            .is_none()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    crds.create(&PostParams::default(), &crd(plural, "Gadget", "Namespaced"))
        .await
        .unwrap();
    established(&crds, &format!("{plural}.example.com")).await;
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(plural, "Gadget"));
    api.list(&ListParams::default()).await.unwrap().items.is_empty()
}
