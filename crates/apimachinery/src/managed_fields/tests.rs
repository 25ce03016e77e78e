use serde_json::json;

use super::*;

fn writer(manager: &str, now: &str) -> Writer {
    Writer {
        manager: manager.into(),
        api_version: "apps/v1".into(),
        subresource: String::new(),
        now: now.into(),
        shape: shape::for_kind("apps/v1", "Deployment"),
        ignored: {
            let mut status = FieldSet::default();
            status.insert(&["f:status".to_owned()]);
            status
        },
    }
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
    })
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    decode(obj)
        .unwrap()
        .into_iter()
        .map(|e| (e.manager, e.operation))
        .collect()
}

#[test]
fn creating_records_the_creator_and_not_server_metadata() {
    let mut obj = deployment(1, "a");
    obj["metadata"]["uid"] = "u".into();
    obj["status"] = json!({"replicas": 0});
    update(None, &mut obj, &writer("kubectl-create", "t1"));
    let entries = decode(&obj).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].operation.as_str(), entries[0].time.as_deref()),
        ("Update", Some("t1"))
    );
    assert_eq!(
        entries[0].fields.to_fields_v1(),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}}},
        })
    );
}

#[test]
fn apply_conflicts_with_another_managers_field_unless_forced() {
    let mut live = deployment(1, "a");
    update(None, &mut live, &writer("kubectl-create", "t1"));
    let config = deployment(3, "a");
    let err = apply(Some(&live), &config, &writer("kubectl", "t2"), false).unwrap_err();
    let ApplyError::Conflicts(conflicts) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        ApplyError::conflict_message(&conflicts),
        "Apply failed with 1 conflict: conflict with \"kubectl-create\" using apps/v1: .spec.replicas"
    );
    // Forced: the applier takes .spec.replicas; the image (same value) is shared.
    let forced = apply(Some(&live), &config, &writer("kubectl", "t2"), true)
        .unwrap()
        .unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    let entries = decode(&forced).unwrap();
    let creator = entries.iter().find(|e| e.manager == "kubectl-create").unwrap();
    assert!(
        creator
            .fields
            .get(&["f:spec".into(), "f:replicas".into()])
            .is_none()
    );
    assert!(creator.fields.covers(&["f:spec".into(), "f:template".into()]));
    assert_eq!(
        managers(&forced),
        [
            ("kubectl".into(), "Apply".into()),
            ("kubectl-create".into(), "Update".into())
        ]
    );
}

#[test]
fn reapplying_is_a_no_op_and_dropping_a_field_removes_it() {
    let config = deployment(2, "a");
    let created = apply(None, &config, &writer("kubectl", "t1"), false)
        .unwrap()
        .unwrap();
    assert_eq!(created["spec"]["replicas"], 2);
    assert_eq!(
        apply(Some(&created), &config, &writer("kubectl", "t2"), false).unwrap(),
        None
    );
    // The next configuration leaves out the label and the replicas: both go.
    let mut smaller = deployment(2, "b");
    smaller["metadata"].as_object_mut().unwrap().remove("labels");
    smaller["spec"].as_object_mut().unwrap().remove("replicas");
    let next = apply(Some(&created), &smaller, &writer("kubectl", "t3"), false)
        .unwrap()
        .unwrap();
    assert_eq!(next["metadata"].get("labels"), None);
    assert_eq!(next["spec"].get("replicas"), None);
    assert_eq!(next["spec"]["template"]["spec"]["containers"][0]["image"], "b");
    assert_eq!(decode(&next).unwrap()[0].time.as_deref(), Some("t3"));
}

#[test]
fn fields_another_manager_owns_stay_when_the_applier_lets_go() {
    let config = deployment(2, "a");
    let created = apply(None, &config, &writer("kubectl", "t1"), false)
        .unwrap()
        .unwrap();
    // A controller changes the replicas (an update takes the field from the applier).
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = 5.into();
    update(Some(&created), &mut scaled, &writer("hpa", "t2"));
    let mut without = deployment(2, "b");
    without["spec"].as_object_mut().unwrap().remove("replicas");
    let next = apply(Some(&scaled), &without, &writer("kubectl", "t3"), false)
        .unwrap()
        .unwrap();
    assert_eq!(next["spec"]["replicas"], 5, "the controller's field stays");
}

#[test]
fn apply_requires_the_served_version_and_no_managed_fields() {
    let mut config = deployment(1, "a");
    config["apiVersion"] = "apps/v1beta1".into();
    assert!(matches!(
        apply(None, &config, &writer("k", "t"), false),
        Err(ApplyError::BadRequest(m)) if m.contains("Specified patch version: apps/v1beta1, expected: apps/v1")
    ));
    let mut config = deployment(1, "a");
    config["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        apply(None, &config, &writer("k", "t"), false),
        Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".into()
        ))
    );
}

#[test]
fn an_explicit_empty_list_resets_ownership() {
    let mut live = deployment(1, "a");
    update(None, &mut live, &writer("a", "t1"));
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([]);
    reset["spec"]["replicas"] = 2.into();
    update(Some(&live), &mut reset, &writer("b", "t2"));
    assert_eq!(managers(&reset), [("b".into(), "Update".into())]);
}
