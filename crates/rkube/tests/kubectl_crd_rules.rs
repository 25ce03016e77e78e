//! CRD validation rules (`x-kubernetes-validations`, CEL) through real kubectl: a CRD with rules
//! (a transition rule and a messageExpression among them) is accepted, a valid resource too, an
//! invalid one and an update changing an immutable field are refused with upstream's text, and a
//! CRD whose rule does not compile is refused.

mod common;

use common::*;

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-validations:
        - rule: self.metadata.name.size() <= 10
          message: names are short
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: self.replicas <= self.maxReplicas
              message: replicas must be <= maxReplicas
            - rule: self.mode == oldSelf.mode
              message: mode is immutable
            properties:
              replicas: {type: integer}
              maxReplicas: {type: integer}
              mode: {type: string}
              image:
                type: string
                x-kubernetes-validations:
                - rule: self.startsWith('registry.local/')
                  messageExpression: \"'image ' + self + ' is not from registry.local'\"
";

fn gadget(ns: &str, name: &str, replicas: i64, image: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: {name}\n  namespace: {ns}\n\
         spec:\n  replicas: {replicas}\n  maxReplicas: 3\n  mode: a\n  image: {image}\n"
    )
}

#[test]
fn crd_validation_rules_refuse_invalid_resources_as_upstream() {
    let server = Server::start();
    server.create("crd.yaml", CRD);
    server.ok(&[
        "wait",
        "--for=condition=established",
        "crd/gadgets.example.com",
        "--timeout=10s",
    ]);
    for kubectl in kubectls() {
        let k = server.with(kubectl);
        let ns = format!("rules-{}", kubectl.label.replace('.', ""));
        k.create("ns.yaml", &namespace(&ns));
        assert_eq!(
            k.create("g1.yaml", &gadget(&ns, "g1", 2, "registry.local/app")),
            "gadget.example.com/g1 created\n"
        );
        assert_eq!(
            k.create_fails("g2.yaml", &gadget(&ns, "g2", 5, "docker.io/app")),
            "The Gadget \"g2\" is invalid: \n\
             * spec: Invalid value: \"object\": replicas must be <= maxReplicas\n\
             * spec.image: Invalid value: \"string\": image docker.io/app is not from registry.local\n"
        );
        assert_eq!(
            k.create_fails(
                "long.yaml",
                &gadget(&ns, "much-too-long", 1, "registry.local/app")
            ),
            "The Gadget \"much-too-long\" is invalid: <nil>: Invalid value: \"object\": names are short\n"
        );
        // The transition rule: mode may not change; other changes pass.
        assert_eq!(
            k.fails(&[
                "patch",
                "gadget",
                "g1",
                "-n",
                &ns,
                "--type=merge",
                "-p",
                r#"{"spec":{"mode":"b"}}"#
            ]),
            "The Gadget \"g1\" is invalid: spec: Invalid value: \"object\": mode is immutable\n"
        );
        assert_eq!(
            k.ok(&[
                "patch",
                "gadget",
                "g1",
                "-n",
                &ns,
                "--type=merge",
                "-p",
                r#"{"spec":{"replicas":3}}"#
            ]),
            "gadget.example.com/g1 patched\n"
        );
        assert_eq!(
            k.ok(&[
                "get",
                "gadget",
                "g1",
                "-n",
                &ns,
                "-o",
                "jsonpath={.spec.replicas} {.spec.mode}"
            ]),
            "3 a"
        );
    }

    // A rule that does not compile refuses the CRD.
    let broken = CRD
        .replace("gadgets", "widgets")
        .replace("gadget", "widget")
        .replace("Gadget", "Widget")
        .replace("self.replicas <= self.maxReplicas", "self.replicas <=");
    let err = server.create_fails("broken.yaml", &broken);
    let expected = "The CustomResourceDefinition \"widgets.example.com\" is invalid: \
         spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: \
         apiextensions.ValidationRule{Rule:\"self.replicas <=\", Message:\"replicas must be <= maxReplicas\", \
         MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", \
         OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:";
    assert!(err.starts_with(expected), "{err}");
    assert!(
        server
            .fails(&["get", "crd", "widgets.example.com"])
            .contains("NotFound"),
        "the CRD was not created"
    );
}
