//! The fuzz harness in CI: every seed and regression input of `fuzz-corpus/`, then a short
//! fixed-seed mutation run (`cargo xtask fuzz` runs the same fuzzer for longer).

use apiserver::fuzz::mutate::{self, Options};
use apiserver::fuzz::{self, TARGETS};

fn corpus() -> Vec<(std::path::PathBuf, Vec<u8>)> {
    mutate::load_corpus(&mutate::corpus_dir()).expect("the fuzz corpus is readable")
}

#[test]
fn every_corpus_and_regression_input_runs_without_panicking() {
    let corpus = corpus();
    assert!(corpus.len() > 300, "{} inputs", corpus.len());
    for (path, input) in &corpus {
        if let Err(crash) = mutate::check(input) {
            panic!("{}: {}", path.display(), crash.message);
        }
    }
}

#[test]
fn seeds_cover_every_target_and_go_all_the_way_through() {
    let corpus = corpus();
    for target in TARGETS {
        let seeds: Vec<_> = corpus
            .iter()
            .filter(|(p, _)| p.parent().and_then(|d| d.file_name()) == Some(target.as_ref()))
            .collect();
        assert!(seeds.len() >= 7, "{target}: {} seeds", seeds.len());
    }
    // A valid object passes every stage of a create: decoding, unknown fields, type and
    // namespace checks, validation, ownership, printing.
    for (path, input) in &corpus {
        let name = path.to_string_lossy();
        if name.contains("create-json/") && name.ends_with("_valid.json") && !name.contains("reviews") {
            assert_eq!(fuzz::outcome(input), (6, Ok(())), "{name}");
        }
    }
}

#[test]
fn a_fixed_seed_mutation_run_finds_no_panic() {
    let corpus = corpus().into_iter().map(|(_, input)| input).collect();
    let options = Options {
        seed: 20261122,
        iterations: Some(3000),
        duration: None,
        before_each: None,
    };
    match mutate::fuzz(corpus, options) {
        Ok(stats) => assert_eq!(stats.executions, 3000),
        Err(crash) => panic!(
            "panic: {}\ninput: {:?}",
            crash.message,
            String::from_utf8_lossy(&crash.input)
        ),
    }
}

/// `n` levels of `{"a": …}` around `leaf`.
fn nest(n: usize, leaf: serde_json::Value) -> serde_json::Value {
    (0..n).fold(leaf, |inner, _| serde_json::json!({"a": inner}))
}

fn def(group: &str, plural: &str) -> &'static apimachinery::resources::ResourceDef {
    apimachinery::resources::BUILTIN
        .iter()
        .find(|d| d.group == group && d.plural == plural)
        .unwrap()
}

/// Runs `input` on a worker-sized stack: a panic fails the test, a stack overflow aborts it.
fn stages(input: &[u8]) -> usize {
    mutate::check(input).unwrap_or_else(|crash| panic!("{}", crash.message));
    let input = input.to_vec();
    std::thread::Builder::new()
        .stack_size(fuzz::WORKER_STACK_BYTES)
        .spawn(move || fuzz::run(&input))
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn objects_as_deep_as_json_bodies_go_through_every_pipeline() {
    use serde_json::json;
    let revisions = def("apps", "controllerrevisions");
    // ControllerRevision.data is a RawExtension: kept whole, as deep as the body brings it
    // (the root and 126 levels below it: serde_json's limit of 127).
    let deep = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": "deep"}, "revision": 1, "data": nest(125, json!({}))});
    assert_eq!(apiserver_depth(&deep), 127);
    let body = serde_json::to_vec(&deep).unwrap();
    assert_eq!(stages(&fuzz::input("create-json", revisions, 0, &body)), 6);
    assert_eq!(stages(&fuzz::input("table", revisions, 0, &body)), 3);
    assert!(stages(&fuzz::input("apply-create", revisions, 0, &body)) >= 5);
    let two = |patch: &serde_json::Value| {
        [
            body.as_slice(),
            fuzz::SEPARATOR,
            &serde_json::to_vec(patch).unwrap(),
        ]
        .concat()
    };
    let relabel = json!({"metadata": {"labels": {"a": "b"}}});
    for target in ["merge-patch", "strategic-merge-patch", "apply", "update"] {
        let patch = if target == "apply" || target == "update" {
            let mut full = deep.clone();
            full["metadata"]["labels"] = json!({"a": "b"});
            full
        } else {
            relabel.clone()
        };
        // Stored object (4 stages), request decoded, changed, validated, owned, printed.
        let want = if target == "update" { 8 } else { 9 };
        assert_eq!(
            stages(&fuzz::input(target, revisions, 0, &two(&patch))),
            want,
            "{target}"
        );
    }
    // A JSON patch may add at the bottom, up to the limit, and no further.
    let path = format!("/data{}", "/a".repeat(125));
    let ok = json!([{"op": "add", "path": format!("{path}/b"), "value": 1}]);
    assert_eq!(stages(&fuzz::input("json-patch", revisions, 0, &two(&ok))), 9);
    let too_deep = json!([{"op": "add", "path": format!("{path}/b"), "value": {}}]);
    assert_eq!(
        stages(&fuzz::input("json-patch", revisions, 0, &two(&too_deep))),
        5
    );

    // Unknown fields as deep as a body goes are dropped; a CRD schema nests as deep as it can.
    let configmap = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "bogus": nest(125, json!(1))});
    let body = serde_json::to_vec(&configmap).unwrap();
    assert_eq!(
        stages(&fuzz::input("create-json", def("", "configmaps"), 0, &body)),
        6
    );
    let schema = (0..60).fold(
        json!({"type": "string"}),
        |inner, _| json!({"type": "object", "properties": {"p": inner}}),
    );
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "ws.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"plural": "ws", "kind": "W"}, "versions": [{"name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": schema}}]}});
    assert!(apiserver_depth(&crd) >= 126, "{}", apiserver_depth(&crd));
    let body = serde_json::to_vec(&crd).unwrap();
    let crds = def("apiextensions.k8s.io", "customresourcedefinitions");
    assert_eq!(stages(&fuzz::input("create-json", crds, 0, &body)), 6);
    let body = [
        body.as_slice(),
        fuzz::SEPARATOR,
        br#"{"metadata":{"labels":{"a":"b"}}}"#,
    ]
    .concat();
    assert_eq!(stages(&fuzz::input("strategic-merge-patch", crds, 0, &body)), 9);
}

fn apiserver_depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(apiserver_depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(apiserver_depth).max().unwrap_or(0),
        _ => 0,
    }
}
