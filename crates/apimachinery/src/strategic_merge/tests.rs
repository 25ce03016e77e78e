//! Cases after upstream's strategicpatch tests, on real API types.

use serde_json::{Value, json};

use crate::status::ApiError;

/// Applies `patch` to `original`, of the kind `original` names.
fn apply(original: &Value, patch: &Value) -> Result<Value, ApiError> {
    let api_version = original["apiVersion"].as_str().unwrap();
    let kind = original["kind"].as_str().unwrap();
    super::apply(api_version, kind, original, patch)
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
}

fn spec_after(original_spec: Value, patch_spec: Value) -> Value {
    let patched = apply(&pod(original_spec), &json!({"spec": patch_spec})).unwrap();
    patched["spec"].clone()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

/// (case, original spec, patch spec, expected spec).
#[test]
fn patches_pod_specs_as_upstream() {
    let cases = [
        (
            "a container merges by name, its unnamed fields merge too",
            json!({"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Always"}, {"name": "b", "image": "y"}]}),
            json!({"containers": [{"name": "b", "image": "z"}]}),
            json!({"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Always"}, {"name": "b", "image": "z"}]}),
        ),
        (
            "without $setElementOrder a new container goes first (patch items lead)",
            json!({"containers": [{"name": "a", "image": "x"}]}),
            json!({"containers": [{"name": "c", "image": "z"}]}),
            json!({"containers": [{"name": "c", "image": "z"}, {"name": "a", "image": "x"}]}),
        ),
        (
            "$patch: delete removes the item with that key",
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}),
            json!({"containers": [{"name": "a", "$patch": "delete"}]}),
            json!({"containers": [{"name": "b", "image": "y"}]}),
        ),
        (
            "$patch: replace in a list makes the rest of the patch the list",
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}),
            json!({"containers": [{"name": "c", "image": "z"}, {"$patch": "replace"}]}),
            json!({"containers": [{"name": "c", "image": "z"}]}),
        ),
        (
            "$patch: replace on a map replaces it",
            json!({"securityContext": {"runAsUser": 1, "runAsGroup": 2}}),
            json!({"securityContext": {"runAsUser": 3, "$patch": "replace"}}),
            json!({"securityContext": {"runAsUser": 3}}),
        ),
        (
            "$patch: delete on a map empties it",
            json!({"securityContext": {"runAsUser": 1}}),
            json!({"securityContext": {"$patch": "delete"}}),
            json!({"securityContext": {}}),
        ),
        (
            "null deletes, maps merge",
            json!({"nodeSelector": {"a": "1", "b": "2"}, "hostname": "h"}),
            json!({"nodeSelector": {"a": null, "c": "3"}, "hostname": null}),
            json!({"nodeSelector": {"b": "2", "c": "3"}}),
        ),
        (
            "lists without a merge strategy are replaced",
            json!({"tolerations": [{"key": "a"}], "containers": [{"name": "a", "args": ["1", "2"]}]}),
            json!({"tolerations": [{"key": "b"}], "containers": [{"name": "a", "args": ["3"]}]}),
            json!({"tolerations": [{"key": "b"}], "containers": [{"name": "a", "args": ["3"]}]}),
        ),
        (
            "env merges by name (new items lead), ports by containerPort, nested in a merged container",
            json!({"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}], "ports": [{"containerPort": 80, "name": "http"}]}]}),
            json!({"containers": [{"name": "a", "env": [{"name": "Y", "$patch": "delete"}, {"name": "Z", "value": "3"}], "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}),
            json!({"containers": [{"name": "a", "env": [{"name": "Z", "value": "3"}, {"name": "X", "value": "1"}], "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}]}]}),
        ),
        (
            "fields of inlined structs are found (EphemeralContainerCommon.env)",
            json!({"ephemeralContainers": [{"name": "d", "env": [{"name": "X", "value": "1"}]}]}),
            json!({"ephemeralContainers": [{"name": "d", "env": [{"name": "Y", "value": "2"}]}]}),
            json!({"ephemeralContainers": [{"name": "d", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]}]}),
        ),
        (
            "$retainKeys in a volume clears the other volume sources",
            json!({"volumes": [{"name": "v", "emptyDir": {}}]}),
            json!({"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}),
            json!({"volumes": [{"name": "v", "configMap": {"name": "cm"}}]}),
        ),
        (
            "$setElementOrder orders a merged list",
            json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
            json!({"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}], "containers": [{"name": "c", "image": "z"}]}),
            json!({"containers": [{"name": "c", "image": "z"}, {"name": "a"}, {"name": "b"}]}),
        ),
        (
            "$setElementOrder with deletions: kubectl apply removing a container",
            json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
            json!({"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}], "containers": [{"name": "b", "$patch": "delete"}]}),
            json!({"containers": [{"name": "c"}, {"name": "a"}]}),
        ),
        (
            "$setElementOrder places a new item where the order says, server-only items go before the next item they preceded",
            json!({"containers": [{"name": "a"}, {"name": "s"}, {"name": "b"}]}),
            json!({"$setElementOrder/containers": [{"name": "a"}, {"name": "n"}, {"name": "b"}], "containers": [{"name": "n", "image": "z"}]}),
            json!({"containers": [{"name": "a"}, {"name": "n", "image": "z"}, {"name": "s"}, {"name": "b"}]}),
        ),
        (
            "$setElementOrder on a list only the patch has",
            json!({}),
            json!({"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}], "containers": [{"name": "b"}, {"name": "x", "$patch": "delete"}, {"name": "a"}]}),
            json!({"containers": [{"name": "b"}, {"name": "a"}]}),
        ),
        (
            "a merged list keeps the patch's order for its items",
            json!({"containers": [{"name": "a"}, {"name": "b"}]}),
            json!({"containers": [{"name": "b", "image": "1"}, {"name": "a", "image": "2"}]}),
            json!({"containers": [{"name": "b", "image": "1"}, {"name": "a", "image": "2"}]}),
        ),
        (
            "unknown fields merge like a merge patch",
            json!({"future": {"a": 1, "b": [1, 2]}}),
            json!({"future": {"a": null, "b": [3], "c": {"d": null, "e": 1}}}),
            json!({"future": {"b": [3], "c": {"e": 1}}}),
        ),
        (
            "a value of another type replaces",
            json!({"containers": [{"name": "a"}]}),
            json!({"containers": "x"}),
            json!({"containers": "x"}),
        ),
    ];
    for (case, original, patch, expected) in cases {
        assert_eq!(spec_after(original, patch), expected, "{case}");
    }
}

#[test]
fn primitive_lists_with_merge_strategy_union_and_delete() {
    let original = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"finalizers": ["a", "b"]}});
    let cases = [
        (json!({"finalizers": ["c", "a"]}), json!(["c", "a", "b"])),
        (
            json!({"$deleteFromPrimitiveList/finalizers": ["a"]}),
            json!(["b"]),
        ),
        (
            json!({"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}),
            json!(["b", "c", "a"]),
        ),
        (json!({"finalizers": null}), Value::Null),
    ];
    for (patch, expected) in cases {
        let out = apply(&original, &json!({"metadata": patch})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], expected, "{patch}");
    }
}

#[test]
fn retain_keys_clears_what_the_list_leaves_out() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let out = apply(&deployment, &patch).unwrap();
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn directives_are_never_stored() {
    let original = pod(json!({"containers": [{"name": "a"}]}));
    let patch = json!({"spec": {"containers": [{"name": "b",
        "$setElementOrder/env": [{"name": "X"}], "env": [{"name": "X"}]}]}});
    let out = apply(&original, &patch).unwrap();
    assert_eq!(
        out["spec"]["containers"][0],
        json!({"name": "b", "env": [{"name": "X"}]})
    );
    assert_eq!(names(&out["spec"]["containers"]), ["b", "a"]);
}

/// (case, original spec, patch spec, code, reason, message).
#[test]
fn errors_as_upstream() {
    let cases = [
        (
            "an item without its merge key",
            json!({"containers": [{"name": "a"}]}),
            json!({"containers": [{"image": "b"}]}),
            500,
            "",
            "map: map[image:b] does not contain declared merge key: name",
        ),
        (
            "$patch: merge in a list",
            json!({"containers": [{"name": "a"}]}),
            json!({"containers": [{"$patch": "merge"}]}),
            500,
            "",
            "merging lists cannot yet be specified in the patch",
        ),
        (
            "an unknown directive in a map",
            json!({"securityContext": {"runAsUser": 1}}),
            json!({"securityContext": {"$patch": "nope", "runAsUser": 2}}),
            500,
            "",
            "unknown patch type: nope in map: map[$patch:nope runAsUser:2]",
        ),
        (
            "$retainKeys that is not a list",
            json!({"volumes": [{"name": "v"}]}),
            json!({"volumes": [{"name": "v", "$retainKeys": "name"}]}),
            400,
            "BadRequest",
            "invalid patch format of retainKeys",
        ),
        (
            "a patched key missing from $retainKeys",
            json!({"volumes": [{"name": "v"}]}),
            json!({"volumes": [{"name": "v", "$retainKeys": ["name"], "emptyDir": {}}]}),
            400,
            "BadRequest",
            "invalid patch format of retainKeys",
        ),
        (
            "a $deleteFromPrimitiveList without a field",
            json!({}),
            json!({"$deleteFromPrimitiveListx": ["a"]}),
            400,
            "BadRequest",
            "invalid patch format of primitive list",
        ),
        (
            "a $setElementOrder without a field",
            json!({}),
            json!({"$setElementOrderx": ["a"]}),
            400,
            "BadRequest",
            "invalid patch format of setElementOrder list",
        ),
        (
            "a patch list out of $setElementOrder's order",
            json!({"containers": [{"name": "a"}, {"name": "b"}]}),
            json!({"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                   "containers": [{"name": "b"}, {"name": "a"}]}),
            500,
            "",
            "The order in patch list:\n[map[name:b] map[name:a]]\n doesn't match $setElementOrder list:\n[map[name:a] map[name:b]]\n",
        ),
        (
            "a list of maps without merge key under merge strategy",
            json!({"imagePullSecrets": [{"name": "a"}], "containers": [{"name": "a", "ports": [{"containerPort": 1}]}]}),
            json!({"containers": [{"name": "a", "ports": [{"containerPort": 2}, "x"]}]}),
            500,
            "",
            "list element types are not identical: [[map[containerPort:1]] [map[containerPort:2] x]]",
        ),
    ];
    for (case, original, patch, code, reason, message) in cases {
        let err = apply(&pod(original), &json!({"spec": patch})).unwrap_err();
        assert_eq!(
            (err.code, err.reason, err.message.as_str()),
            (code, reason, message),
            "{case}"
        );
    }
}

#[test]
fn lists_of_lists_are_unprocessable() {
    let original = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"finalizers": []}});
    let err = apply(&original, &json!({"metadata": {"finalizers": [["a"]]}})).unwrap_err();
    assert_eq!((err.code, err.reason), (422, "Invalid"));
    assert_eq!(
        err.message,
        "the server rejected our request due to an error in our request"
    );
}

#[test]
fn custom_resources_are_refused() {
    let cr = json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {}});
    let err = apply(&cr, &json!({"spec": {"a": 1}})).unwrap_err();
    assert_eq!((err.code, err.reason), (415, "UnsupportedMediaType"));
    assert_eq!(
        err.message,
        "the body of the request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
}

#[test]
fn unsupported_patch_types_list_what_the_kind_accepts() {
    let builtin = super::unsupported_patch_type("apps/v1", "Deployment");
    assert_eq!((builtin.code, builtin.reason), (415, "UnsupportedMediaType"));
    assert!(builtin.message.ends_with(
        "application/json-patch+json, application/merge-patch+json, \
         application/strategic-merge-patch+json, application/apply-patch+yaml"
    ));
    let custom = super::unsupported_patch_type("example.com/v1", "Widget");
    assert!(!custom.message.contains("strategic"));
}

#[test]
fn go_formatting_of_values() {
    use super::gofmt::go_value;
    let value = json!({"b": [1, 2.5, true, null], "a": {"x": "y"}, "c": 1e6, "d": 0.0001});
    assert_eq!(
        go_value(&value),
        "map[a:map[x:y] b:[1 2.5 true <nil>] c:1e+06 d:0.0001]"
    );
}

// Upstream's test types (`MergeItem`, `RetainKeysMergeItem` in strategicpatch's tests), as
// schema entries, so that upstream's test cases run unchanged.

use crate::protobuf::schema::{Field, Kind, PatchMeta};

const fn field(json: &'static str, kind: Kind, repeated: bool) -> Field {
    Field {
        tag: 0,
        json,
        kind,
        repeated,
    }
}

const ITEM: &str = "test.MergeItem";
const RETAIN_ITEM: &str = "test.RetainKeysMergeItem";

static MERGE_ITEM: [Field; 13] = [
    field("name", Kind::String, false),
    field("value", Kind::String, false),
    field("other", Kind::String, false),
    field("mergingList", Kind::Message(ITEM), true),
    field("nonMergingList", Kind::Message(ITEM), true),
    field("mergingIntList", Kind::Int64, true),
    field("nonMergingIntList", Kind::Int64, true),
    field("mergeItemPtr", Kind::Message(ITEM), false),
    field("simpleMap", Kind::StringMap, false),
    field("replacingItem", Kind::Message("runtime.RawExtension"), false),
    field("jsonItem", Kind::Message("apiextensions.v1.Json"), false),
    field("retainKeysMap", Kind::Message(RETAIN_ITEM), false),
    field("retainKeysMergingList", Kind::Message(ITEM), true),
];

static RETAIN_KEYS_MERGE_ITEM: [Field; 7] = [
    field("name", Kind::String, false),
    field("value", Kind::String, false),
    field("other", Kind::String, false),
    field("simpleMap", Kind::StringMap, false),
    field("mergingIntList", Kind::Int64, true),
    field("mergingList", Kind::Message(ITEM), true),
    field("nonMergingList", Kind::Message(ITEM), true),
];

const fn meta(strategy: &'static str, merge_key: &'static str) -> PatchMeta {
    PatchMeta {
        strategy,
        merge_key,
        list_type: "",
        map_keys: &[],
        map_type: "",
    }
}

static MERGE_BY_NAME: PatchMeta = meta("merge", "name");
static MERGE: PatchMeta = meta("merge", "");
static REPLACE: PatchMeta = meta("replace", "");
static RETAIN_KEYS: PatchMeta = meta("retainKeys", "");
static MERGE_RETAIN_KEYS_BY_NAME: PatchMeta = meta("merge,retainKeys", "name");

pub(super) fn fixture_fields(message: &str) -> Option<&'static [Field]> {
    match message {
        ITEM => Some(&MERGE_ITEM),
        RETAIN_ITEM => Some(&RETAIN_KEYS_MERGE_ITEM),
        _ => None,
    }
}

pub(super) fn fixture_patch_meta(_message: &str, json: &str) -> Option<&'static PatchMeta> {
    match json {
        "mergingList" | "mergeItemPtr" => Some(&MERGE_BY_NAME),
        "mergingIntList" => Some(&MERGE),
        "replacingItem" => Some(&REPLACE),
        "retainKeysMap" => Some(&RETAIN_KEYS),
        "retainKeysMergingList" => Some(&MERGE_RETAIN_KEYS_BY_NAME),
        _ => None,
    }
}

/// Upstream's `strategicMergePatchRawTestCases`: each case's three-way patch applied to its
/// current object and its two-way patch applied to its original, results compared exactly
/// (order included).
#[test]
fn upstream_raw_test_cases() {
    let cases: Vec<Value> = serde_json::from_str(include_str!("testdata/upstream_cases.json")).unwrap();
    assert!(cases.len() > 150);
    let mut failures = Vec::new();
    for case in &cases {
        let result = super::apply_with_schema(&case["original"], &case["patch"], super::Schema::Struct(ITEM));
        match result {
            Ok(actual) if actual == case["expected"] => {}
            Ok(actual) => failures.push(format!(
                "{}:\n  expected {}\n  got      {actual}",
                case["case"], case["expected"]
            )),
            Err(e) => failures.push(format!("{}: {e}", case["case"])),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Upstream's `customStrategicMergePatch*` cases (patches applied as written, errors included)
/// and the two- and three-way cases of `createStrategicMergePatchTestCaseData`; those marked
/// `sorted` are compared with merge lists sorted, as upstream compares them.
#[test]
fn upstream_custom_and_yaml_test_cases() {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("testdata/upstream_custom_cases.json")).unwrap();
    assert!(cases.len() > 50);
    let mut failures = Vec::new();
    for case in &cases {
        let name = &case["case"];
        let original = normalize_null(&case["original"]);
        let patch = normalize_null(&case["patch"]);
        let result = super::apply_with_schema(&original, &patch, super::Schema::Struct(ITEM));
        match (result, case["error"].as_str()) {
            (Err(e), Some(wanted)) if e.message.contains(wanted) => {}
            (Ok(actual), None) => {
                let mut actual = actual;
                let mut expected = normalize_null(&case["expected"]);
                if case["sorted"] == true {
                    sort_merge_lists(&mut actual);
                    sort_merge_lists(&mut expected);
                }
                if actual != expected {
                    failures.push(format!("{name}:\n  expected {expected}\n  got      {actual}"));
                }
            }
            (other, wanted) => failures.push(format!("{name}: got {other:?}, wanted error {wanted:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An absent YAML document is `{}`.
fn normalize_null(value: &Value) -> Value {
    if value.is_null() { json!({}) } else { value.clone() }
}

/// Upstream's `sortMergeListsByName` for the test type: merge lists sorted by their merge key
/// (scalars: deduplicated and sorted), as printed by `%v`.
fn sort_merge_lists(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                sort_merge_lists(v);
                let merge_list = matches!(
                    key.as_str(),
                    "mergingList" | "mergingIntList" | "retainKeysMergingList"
                );
                if let (true, Value::Array(items)) = (merge_list, v) {
                    let text =
                        |v: &Value| super::gofmt::go_value(&v.get("name").cloned().unwrap_or(v.clone()));
                    items.sort_by_key(text);
                    items.dedup();
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sort_merge_lists),
        _ => {}
    }
}

/// Upstream's `TestUnknownField` cases that apply: fields outside the schema merge like a merge
/// patch (nulls delete or are dropped, lists are replaced, nulls inside them kept).
#[test]
fn unknown_fields_as_upstream() {
    let cases = [
        (
            json!({"array": [1, 2, 3], "complex": {"nested": true}, "name": "foo"}),
            json!({"complex_nullable": {"key": null}}),
            json!({"array": [1, 2, 3], "complex": {"nested": true}, "complex_nullable": {}, "name": "foo"}),
        ),
        (
            json!({}),
            json!({"complex_nullable": {"key": {"keynotnull": "value", "keynull": null}}}),
            json!({"complex_nullable": {"key": {"keynotnull": "value"}}}),
        ),
        (
            json!({"thing": null}),
            json!({"nested": {"value": 5}}),
            json!({"nested": {"value": 5}, "thing": null}),
        ),
        (
            json!({}),
            json!({"complex_nullable": [{"inner_one": {"key_one": "foo", "key_two": null}}]}),
            json!({"complex_nullable": [{"inner_one": {"key_one": "foo"}}]}),
        ),
        (
            json!({}),
            json!({"complex_nullable": ["key1", null, "key2"]}),
            json!({"complex_nullable": ["key1", null, "key2"]}),
        ),
        (
            json!({"name": "foo", "scalar": true, "complex": {"nested": true}, "array": [1, 2, 3]}),
            json!({"complex": null, "scalar": null}),
            json!({"array": [1, 2, 3], "name": "foo"}),
        ),
    ];
    for (original, patch, expected) in cases {
        let out = super::apply_with_schema(&original, &patch, super::Schema::Struct(ITEM));
        assert_eq!(out.unwrap(), expected, "{patch}");
    }
}
