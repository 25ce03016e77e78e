//! The API server driven by kube-rs (the client our own components use), in process: typed
//! CRUD, selectors, pagination, conflicts, Status errors, and kube-runtime's watcher.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Error};

struct Cluster {
    client: Client,
    _server: apiserver::Running,
    _dir: tempfile::TempDir,
}

async fn start() -> Cluster {
    let (client, server, dir) = common::start().await;
    Cluster {
        client,
        _server: server,
        _dir: dir,
    }
}

fn configmap(name: &str, labels: &[(&str, &str)], value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("v".to_owned(), value.to_owned())])),
        ..Default::default()
    }
}

fn api_error(err: Error) -> (u16, String) {
    match err {
        Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn namespace(client: &Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_crud_selectors_pagination_and_conflicts() {
    let cluster = start().await;
    let client = cluster.client.clone();
    let system = Api::<Namespace>::all(client.clone())
        .get("kube-system")
        .await
        .unwrap();
    assert_eq!(system.status.unwrap().phase.as_deref(), Some("Active"));
    namespace(&client, "kube-rs").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-rs");

    let created = cms
        .create(&PostParams::default(), &configmap("one", &[("app", "web")], "1"))
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().expect("uid");
    assert!(created.metadata.creation_timestamp.is_some());
    for i in 0..9 {
        cms.create(
            &PostParams::default(),
            &configmap(&format!("many-{i}"), &[("app", "db")], "x"),
        )
        .await
        .unwrap();
    }
    let err = cms
        .create(&PostParams::default(), &configmap("one", &[], "dup"))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "AlreadyExists".to_owned()));

    let web = cms.list(&ListParams::default().labels("app=web")).await.unwrap();
    assert_eq!(web.items.len(), 1);
    assert_eq!(web.items[0].metadata.uid.as_deref(), Some(uid.as_str()));

    // Pages of 4 follow continue tokens to all 10 objects, each exactly once.
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(4);
    loop {
        let page = cms.list(&params).await.unwrap();
        names.extend(page.items.iter().map(|cm| cm.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(names.len(), 10, "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "lists come in key order");

    let patched = cms
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"v": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["v"], "2");
    // Replacing with the stale object (its old resourceVersion) is a conflict.
    let err = cms
        .replace("one", &PostParams::default(), &created)
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".to_owned()));

    // Delete preconditions that do not hold are conflicts, worded as upstream.
    let stale = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: Some("1".into()),
            uid: None,
        }),
        ..Default::default()
    };
    match cms.delete("one", &stale).await.unwrap_err() {
        Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
            assert!(status.message.contains("Precondition failed: ResourceVersion in precondition: 1, ResourceVersion in object meta: "), "{}", status.message);
        }
        other => panic!("{other:?}"),
    }
    let wrong_uid = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: None,
            uid: Some("not-it".into()),
        }),
        ..Default::default()
    };
    assert_eq!(
        api_error(cms.delete("one", &wrong_uid).await.unwrap_err()),
        (409, "Conflict".to_owned())
    );
    let right_uid = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: None,
            uid: Some(uid.clone()),
        }),
        ..Default::default()
    };
    cms.delete("one", &right_uid).await.unwrap();
    let err = cms.get("one").await.unwrap_err();
    assert_eq!(api_error(err), (404, "NotFound".to_owned()));
    let none = Api::<ConfigMap>::namespaced(client.clone(), "nowhere")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(none.items.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_watcher_sees_changes() {
    let cluster = start().await;
    let client = cluster.client.clone();
    namespace(&client, "watched").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "watched");
    cms.create(&PostParams::default(), &configmap("before", &[], "0"))
        .await
        .unwrap();

    let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    let writer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cms.create(&PostParams::default(), &configmap("after", &[], "1"))
            .await
            .unwrap();
        cms.patch(
            "after",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"v": "2"}})),
        )
        .await
        .unwrap();
        cms.delete("before", &DeleteParams::default()).await.unwrap();
    };
    let reader = async {
        while let Some(event) = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            let summary = match event {
                watcher::Event::Init | watcher::Event::InitDone => continue,
                watcher::Event::InitApply(cm) => format!("init {}", cm.metadata.name.unwrap()),
                watcher::Event::Apply(cm) => {
                    format!("apply {} {}", cm.metadata.name.unwrap(), cm.data.unwrap()["v"])
                }
                watcher::Event::Delete(cm) => format!("delete {}", cm.metadata.name.unwrap()),
            };
            seen.push(summary);
            if seen.len() == 4 {
                break;
            }
        }
    };
    tokio::join!(writer, reader);
    assert_eq!(
        seen,
        ["init before", "apply after 1", "apply after 2", "delete before"]
    );
}

#[tokio::test]
async fn server_side_apply_through_kube_rs() {
    let cluster = start().await;
    namespace(&cluster.client, "ssa").await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "ssa");
    // kube-rs sends apply configurations as JSON; typed objects need apiVersion and kind.
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ssa", "labels": {"owner": "a"}},
        "data": {"k": "1"},
    });
    let created = api
        .patch("ssa", &PatchParams::apply("manager-a"), &Patch::Apply(&config))
        .await
        .unwrap();
    let fields = created.metadata.managed_fields.clone().unwrap();
    assert_eq!(fields.len(), 1);
    assert_eq!(
        (fields[0].manager.as_deref(), fields[0].operation.as_deref()),
        (Some("manager-a"), Some("Apply"))
    );

    // A second manager changing k conflicts (409 with a FieldManagerConflict cause) unless forced.
    let mut other = config.clone();
    other["data"]["k"] = "2".into();
    let err = api
        .patch("ssa", &PatchParams::apply("manager-b"), &Patch::Apply(&other))
        .await
        .unwrap_err();
    let Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"manager-a\": .data.k"
    );
    let forced = api
        .patch(
            "ssa",
            &PatchParams::apply("manager-b").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["k"], "2");
    let managers: Vec<_> = forced
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|f| f.manager.unwrap())
        .collect();
    assert_eq!(
        managers,
        ["manager-a", "manager-b"],
        "a keeps the label, b owns k"
    );

    // Apply without a fieldManager is refused as upstream does.
    let err = api
        .patch("ssa", &PatchParams::default(), &Patch::Apply(&config))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Api(s) if s.code == 422 && s.message.contains("fieldManager: Required value"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategic_merge_patch_merges_lists_by_key() {
    // A PodTemplate: a pod's containers cannot change after creation (upstream's pod update
    // rule), a template's can.
    use k8s_openapi::api::core::v1::PodTemplate;
    let cluster = start().await;
    namespace(&cluster.client, "smp").await;
    let pods: Api<PodTemplate> = Api::namespaced(cluster.client.clone(), "smp");
    let pod: PodTemplate = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "finalizers": ["example.com/a"]},
        "template": {"spec": {"containers": [
            {"name": "a", "image": "nginx", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "busybox"},
        ]}},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let patch = serde_json::json!({
        "metadata": {"finalizers": ["example.com/b"]},
        "template": {"spec": {"containers": [
            {"name": "a", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
        ]}},
    });
    let patched = pods
        .patch("p", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let finalizers = patched.metadata.finalizers.unwrap();
    assert_eq!(finalizers, ["example.com/b", "example.com/a"]);
    let containers = patched.template.unwrap().spec.unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].image.as_deref(), Some("nginx"));
    let env: Vec<&str> = containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(env, ["Y", "X"]);

    let no_key = serde_json::json!({"template": {"spec": {"containers": [{"image": "x"}]}}});
    let err = pods
        .patch("p", &PatchParams::default(), &Patch::Strategic(no_key))
        .await
        .unwrap_err();
    let Error::Api(status) = err else {
        panic!("expected an API error")
    };
    assert_eq!(status.code, 500);
    assert_eq!(
        status.message,
        "map: map[image:x] does not contain declared merge key: name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_watches_from_the_watch_cache_match_the_store() {
    let cluster = start().await;
    namespace(&cluster.client, "cached").await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "cached");
    for (i, tier) in ["a", "b", "a"].iter().enumerate() {
        api.create(
            &PostParams::default(),
            &configmap(&format!("cm-{i}"), &[("tier", tier)], "v"),
        )
        .await
        .unwrap();
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items.into_iter().map(|c| c.metadata.name.unwrap()).collect()
    };
    // Paginated lists read the store; resourceVersion=0 and unpaginated lists the cache (once
    // it has loaded: the first such request starts it).
    let from_store = names(
        api.list(&ListParams::default().limit(10).labels("tier=a"))
            .await
            .unwrap(),
    );
    for _ in 0..50 {
        api.list(&ListParams::default().match_any()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let any = api
        .list(&ListParams::default().match_any().labels("tier=a"))
        .await
        .unwrap();
    assert!(any.metadata.resource_version.is_some());
    assert_eq!(names(any), from_store);
    let latest = api.list(&ListParams::default().labels("tier=a")).await.unwrap();
    assert_eq!(names(latest), ["cm-0", "cm-2"]);
    let all = api.list(&ListParams::default()).await.unwrap();
    assert!(
        all.items
            .iter()
            .all(|c| c.metadata.resource_version.is_some() && c.data.is_some())
    );

    // A watch from resourceVersion 0 starts with every object, then follows changes.
    let mut events = api
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let mut added = Vec::new();
    while added.len() < 3 {
        match events.try_next().await.unwrap().unwrap() {
            kube::api::WatchEvent::Added(cm) => added.push(cm.metadata.name.unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    added.sort();
    assert_eq!(added, ["cm-0", "cm-1", "cm-2"]);
    api.delete("cm-1", &DeleteParams::default()).await.unwrap();
    match events.try_next().await.unwrap().unwrap() {
        kube::api::WatchEvent::Deleted(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("cm-1")),
        other => panic!("unexpected {other:?}"),
    }
}

/// Metadata-only reads (`as=PartialObjectMetadata`), as kube-rs's `get_metadata`,
/// `list_metadata` and `metadata_watcher` (and client-go's metadata informers) ask for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_gets_lists_and_watches() {
    let cluster = start().await;
    let client = cluster.client.clone();
    namespace(&client, "meta").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "meta");
    cms.create(&PostParams::default(), &configmap("one", &[("app", "x")], "1"))
        .await
        .unwrap();
    let one = cms.get_metadata("one").await.unwrap();
    assert_eq!(one.types.as_ref().unwrap().kind, "PartialObjectMetadata");
    assert_eq!(one.metadata.labels.unwrap()["app"], "x");
    let raw = client
        .request_text(
            http::Request::get("/api/v1/namespaces/meta/configmaps")
                .header(
                    "Accept",
                    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                )
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["metadata"]["name"], "one");
    assert!(list["items"][0].get("data").is_none(), "{list}");
    let listed = cms.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);

    let metas: Api<kube::core::PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), "meta");
    let mut events = watcher(metas, watcher::Config::default()).boxed();
    let mut names = Vec::new();
    let writer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cms.create(&PostParams::default(), &configmap("two", &[], "2"))
            .await
            .unwrap();
    };
    let reader = async {
        while let Some(event) = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            match event {
                watcher::Event::InitApply(m) | watcher::Event::Apply(m) => {
                    names.push(m.metadata.name.unwrap())
                }
                _ => continue,
            }
            if names.len() == 2 {
                break;
            }
        }
    };
    tokio::join!(writer, reader);
    assert_eq!(names, ["one", "two"]);
}

/// A DELETE answers 202 Accepted only when the object stays and the caller set the legacy
/// `orphanDependents: false`; a foreground delete that leaves the object answers 200.
#[tokio::test]
async fn delete_answers_202_only_for_orphan_dependents_false() {
    let cluster = start().await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
    let held = |name: &str| {
        let mut cm = configmap(name, &[], "v");
        cm.metadata.finalizers = Some(vec!["example.com/hold".into()]);
        cm
    };
    for name in ["legacy", "foreground", "gone"] {
        let cm = if name == "gone" {
            configmap(name, &[], "v")
        } else {
            held(name)
        };
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let delete = |name: &str, body: &str| {
        http::Request::delete(format!("/api/v1/namespaces/default/configmaps/{name}"))
            .header("Content-Type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    let status = |name: &str, body: &str| {
        let client = cluster.client.clone();
        let request = delete(name, body);
        async move {
            client
                .send(request.map(kube::client::Body::from))
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status("legacy", r#"{"orphanDependents": false}"#).await, 202);
    assert_eq!(
        status("foreground", r#"{"propagationPolicy": "Foreground"}"#).await,
        200
    );
    assert_eq!(status("gone", r#"{"orphanDependents": false}"#).await, 200);
}

/// A write asked for as metadata answers as PartialObjectMetadata (kube-rs's `patch_metadata`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_patch_answers_partial_object_metadata() {
    use kube::core::PartialObjectMetaExt;
    let cluster = start().await;
    let client = cluster.client.clone();
    namespace(&client, "metapatch").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "metapatch");
    cms.create(&PostParams::default(), &configmap("one", &[], "1"))
        .await
        .unwrap();
    let patch = ObjectMeta {
        annotations: Some(BTreeMap::from([("test".to_owned(), "123".to_owned())])),
        ..Default::default()
    }
    .into_request_partial::<ConfigMap>();
    let patched = cms
        .patch_metadata("one", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let types = patched.types.as_ref().unwrap();
    assert_eq!(types.kind, "PartialObjectMetadata");
    assert_eq!(types.api_version, "meta.k8s.io/v1");
    assert_eq!(patched.metadata.annotations.unwrap()["test"], "123");
    assert_eq!(cms.get("one").await.unwrap().data.unwrap()["v"], "1");
}

/// An unset `spec.unschedulable` selects as "false", its Go zero value (kube-rs's cordon test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unset_unschedulable_selects_as_false() {
    use k8s_openapi::api::core::v1::Node;
    let cluster = start().await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": "fake"}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let schedulable = ListParams::default().fields("spec.unschedulable==false");
    let names = |list: kube::api::ObjectList<Node>| -> Vec<String> {
        list.items.into_iter().filter_map(|n| n.metadata.name).collect()
    };
    assert_eq!(names(nodes.list(&schedulable).await.unwrap()), ["fake"]);
    nodes.cordon("fake").await.unwrap();
    assert!(names(nodes.list(&schedulable).await.unwrap()).is_empty());
    let cordoned = ListParams::default().fields("spec.unschedulable=true");
    assert_eq!(names(nodes.list(&cordoned).await.unwrap()), ["fake"]);
    nodes.uncordon("fake").await.unwrap();
    assert_eq!(names(nodes.list(&schedulable).await.unwrap()), ["fake"]);
}

/// RBAC's bootstrap policy: `cluster-admin` exists from the start, bound to `system:masters`.
#[tokio::test]
async fn cluster_admin_exists_from_the_start() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let cluster = start().await;
    let role = Api::<ClusterRole>::all(cluster.client.clone())
        .get("cluster-admin")
        .await
        .unwrap();
    let rules = role.rules.unwrap();
    assert_eq!(rules[0].verbs, vec!["*"]);
    assert_eq!(rules[1].non_resource_urls, Some(vec!["*".to_owned()]));
    let binding = Api::<ClusterRoleBinding>::all(cluster.client.clone())
        .get("cluster-admin")
        .await
        .unwrap();
    assert_eq!(binding.role_ref.name, "cluster-admin");
    assert_eq!(binding.subjects.unwrap()[0].name, "system:masters");
}
