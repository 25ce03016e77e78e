//! Protobuf bodies built here by hand (the wire format is simple) and decoded.

use serde_json::json;

use super::*;

/// Encodes (field, bytes) pairs and varints, enough to build test messages.
struct Enc(Vec<u8>);

impl Enc {
    fn new() -> Self {
        Enc(Vec::new())
    }
    fn varint(mut self, tag: u32, mut v: u64) -> Self {
        self.key(tag, 0);
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return self;
            }
            self.0.push(byte | 0x80);
        }
    }
    fn bytes(mut self, tag: u32, b: &[u8]) -> Self {
        self.key(tag, 2);
        self.len(b.len());
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, tag: u32, s: &str) -> Self {
        self.bytes(tag, s.as_bytes())
    }
    fn msg(self, tag: u32, m: Enc) -> Self {
        self.bytes(tag, &m.0)
    }
    fn key(&mut self, tag: u32, wire: u8) {
        let mut k = u64::from(tag) << 3 | u64::from(wire);
        loop {
            let byte = (k & 0x7f) as u8;
            k >>= 7;
            if k == 0 {
                self.0.push(byte);
                break;
            }
            self.0.push(byte | 0x80);
        }
    }
    fn len(&mut self, n: usize) {
        let mut v = n as u64;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                break;
            }
            self.0.push(byte | 0x80);
        }
    }
}

fn wrap(api_version: &str, kind: &str, raw: Enc) -> Vec<u8> {
    let unknown = Enc::new()
        .msg(1, Enc::new().str(1, api_version).str(2, kind))
        .msg(2, raw);
    let mut body = b"k8s\0".to_vec();
    body.extend_from_slice(&unknown.0);
    body
}

fn entry(k: &str, v: &[u8]) -> Enc {
    Enc::new().str(1, k).bytes(2, v)
}

#[test]
fn decodes_a_configmap_as_kubectl_sends_it() {
    let meta = Enc::new()
        .str(1, "cm1")
        .str(3, "demo")
        .msg(8, Enc::new().varint(1, -62_135_596_800i64 as u64)) // an unset metav1.Time, as Go encodes it
        .msg(11, entry("app", b"web"))
        .str(14, "example.com/f");
    let cm = Enc::new()
        .msg(1, meta)
        .msg(2, entry("greeting", b"hello"))
        .msg(2, entry("empty", b""))
        .msg(3, entry("bin", &[0, 1, 2]));
    let decoded = decode_object(&wrap("v1", "ConfigMap", cm)).unwrap();
    assert_eq!(
        decoded,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm1", "namespace": "demo", "creationTimestamp": null,
                         "labels": {"app": "web"}, "finalizers": ["example.com/f"]},
            "data": {"greeting": "hello", "empty": ""},
            "binaryData": {"bin": "AAEC"},
        })
    );
}

#[test]
fn decodes_secrets_namespaces_and_times() {
    let secret = Enc::new()
        .msg(1, Enc::new().str(1, "s"))
        .msg(2, entry("password", b"hunter2"))
        .str(3, "Opaque")
        .varint(5, 1);
    let decoded = decode_object(&wrap("v1", "Secret", secret)).unwrap();
    assert_eq!(decoded["data"]["password"], "aHVudGVyMg==");
    assert_eq!(
        (decoded["type"].as_str(), decoded["immutable"].as_bool()),
        (Some("Opaque"), Some(true))
    );

    let created = Enc::new().varint(1, 1_767_225_600).varint(2, 0); // 2026-01-01T00:00:00Z
    let ns = Enc::new()
        .msg(1, Enc::new().str(1, "x").msg(8, created))
        .msg(2, Enc::new().str(1, "kubernetes"));
    let decoded = decode_object(&wrap("v1", "Namespace", ns)).unwrap();
    assert_eq!(decoded["metadata"]["creationTimestamp"], "2026-01-01T00:00:00Z");
    assert_eq!(decoded["spec"]["finalizers"], json!(["kubernetes"]));
}

#[test]
fn decodes_quantities_and_int32s() {
    let quantity = |q: &str| Enc::new().str(1, q);
    let hard = |k: &str, q: &str| Enc::new().str(1, k).msg(2, quantity(q));
    let spec = Enc::new()
        .msg(1, hard("pods", "10"))
        .msg(1, hard("limits.memory", "2Gi"))
        .str(2, "BestEffort");
    let quota = Enc::new().msg(1, Enc::new().str(1, "q")).msg(2, spec);
    let decoded = decode_object(&wrap("v1", "ResourceQuota", quota)).unwrap();
    assert_eq!(
        decoded["spec"],
        json!({"hard": {"pods": "10", "limits.memory": "2Gi"}, "scopes": ["BestEffort"]})
    );

    // Negative int32s are sign-extended ten-byte varints.
    let pc = Enc::new()
        .msg(1, Enc::new().str(1, "low"))
        .varint(2, -5i64 as u64)
        .varint(3, 0)
        .str(5, "Never");
    let decoded = decode_object(&wrap("scheduling.k8s.io/v1", "PriorityClass", pc)).unwrap();
    assert_eq!(
        (decoded["value"].as_i64(), decoded["globalDefault"].as_bool()),
        // globalDefault is a Go bool tagged omitempty: false is left out, as Go's JSON does.
        (Some(-5), None)
    );
    assert_eq!(decoded["preemptionPolicy"], "Never");
}

#[test]
fn decodes_a_deployment_with_embedded_structs_and_int_or_string() {
    let container = Enc::new().str(1, "web").str(2, "nginx:1.27").msg(
        10, // livenessProbe: ProbeHandler embedded (field 1), then initialDelaySeconds
        Enc::new()
            .msg(
                1,
                Enc::new().msg(
                    2,
                    Enc::new()
                        .str(1, "/healthz")
                        .msg(2, Enc::new().varint(1, 0).varint(2, 8080)),
                ),
            )
            .varint(2, 3),
    );
    let pod_spec = Enc::new().msg(2, container);
    let template = Enc::new()
        .msg(1, Enc::new().msg(11, entry("app", b"web")))
        .msg(2, pod_spec);
    let strategy = Enc::new()
        .str(1, "RollingUpdate")
        .msg(2, Enc::new().msg(1, Enc::new().varint(1, 1).str(3, "25%")));
    let selector = Enc::new().msg(1, entry("app", b"web"));
    let spec = Enc::new()
        .varint(1, 3)
        .msg(2, selector)
        .msg(3, template)
        .msg(4, strategy);
    let deployment = Enc::new().msg(1, Enc::new().str(1, "web")).msg(2, spec);
    let decoded = decode_object(&wrap("apps/v1", "Deployment", deployment)).unwrap();
    assert_eq!(decoded["spec"]["replicas"], 3);
    assert_eq!(
        decoded["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    assert_eq!(
        decoded["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}})
    );
    let web = &decoded["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        (web["name"].as_str(), web["image"].as_str()),
        (Some("web"), Some("nginx:1.27"))
    );
    assert_eq!(
        web["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 3})
    );
}

#[test]
fn refuses_what_it_cannot_read() {
    assert_eq!(decode_object(b"{\"kind\":\"Pod\"}"), Err(ProtobufError::NoMagic));
    let unknown = decode_object(&wrap("example.com/v1", "Widget", Enc::new())).unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "protobuf encoding of example.com/v1/Widget is not supported yet; send it as JSON"
    );
    let mut truncated = wrap("v1", "ConfigMap", Enc::new().msg(1, Enc::new().str(1, "cm1")));
    truncated.truncate(truncated.len() - 2);
    assert!(matches!(
        decode_object(&truncated),
        Err(ProtobufError::Malformed(_))
    ));
    // Random bytes after the magic never panic.
    let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1d);
    for len in 0..400 {
        let mut body = b"k8s\0".to_vec();
        for _ in 0..len {
            body.push(next() as u8);
        }
        let _ = decode_object(&body);
    }
}

#[test]
fn crd_schema_unions_decode_to_their_json_form() {
    // JSONSchemaProps{type: "string"}: field 5, length-delimited.
    let props: &[u8] = &[0x2a, 6, b's', b't', b'r', b'i', b'n', b'g'];
    let mut or_array = vec![0x0a, props.len() as u8];
    or_array.extend_from_slice(props);
    assert_eq!(
        decode_message("apiextensions.v1.JsonSchemaPropsOrArray", &or_array, 0).unwrap(),
        json!({"type": "string"})
    );
    assert_eq!(
        decode_message("apiextensions.v1.JsonSchemaPropsOrBool", &[0x08, 0x01], 0).unwrap(),
        json!(true)
    );
    let strings = [0x12, 1, b'a', 0x12, 1, b'b'];
    assert_eq!(
        decode_message("apiextensions.v1.JsonSchemaPropsOrStringArray", &strings, 0).unwrap(),
        json!(["a", "b"])
    );
}

#[test]
fn an_empty_time_is_null() {
    // client-go marshals a zero metav1.Time as no bytes (pod templates' creationTimestamp).
    assert_eq!(special("meta.v1.Time", &[], 0).unwrap(), Some(Value::Null));
    let epoch = Enc::new().varint(1, 1).0;
    assert_eq!(
        special("meta.v1.Time", &epoch, 0).unwrap(),
        Some(Value::String("1970-01-01T00:00:01Z".into()))
    );
}

#[test]
fn refuses_messages_nested_deeper_than_any_json_body() {
    // A CRD schema whose `properties` nest 5 000 levels: a few bytes each, more than a worker's
    // stack holds if decoded recursively (a 3 MiB body could nest hundreds of thousands).
    let mut props = Enc::new().str(1, "leaf");
    for _ in 0..5_000 {
        props = Enc::new().msg(29, Enc::new().str(1, "p").msg(2, props));
    }
    let validation = Enc::new().msg(1, props);
    let version = Enc::new().str(1, "v1").msg(4, validation);
    let spec = Enc::new().str(1, "example.com").msg(7, version);
    let crd = Enc::new().msg(1, Enc::new().str(1, "w.example.com")).msg(2, spec);
    let body = wrap("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd);
    let decode = move || decode_object(&body);
    // On a thread with a server worker's stack (tokio's 2 MiB).
    let result = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(decode)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        result,
        Err(ProtobufError::Malformed(
            "messages nest deeper than 100 levels".into()
        ))
    );
}

#[test]
fn go_zero_values_of_omitempty_fields_are_left_out() {
    // gogo protobuf writes every non-pointer field: an unset generateName, uid or generation
    // arrives as "" / 0, and Go's JSON would omit them.
    let meta = Enc::new().str(1, "web").str(2, "").str(5, "").varint(7, 0);
    // DeploymentSpec: replicas (1, a pointer) 0 stays; minReadySeconds (5) 0 and paused (7)
    // false go.
    let spec = Enc::new().varint(1, 0).varint(5, 0).varint(7, 0);
    let decoded = decode_object(&wrap(
        "apps/v1",
        "Deployment",
        Enc::new().msg(1, meta).msg(2, spec),
    ))
    .unwrap();
    assert_eq!(decoded["metadata"], json!({"name": "web"}));
    assert_eq!(decoded["spec"], json!({"replicas": 0}));
    // A ServicePort's port has no omitempty: its zero stays, as Go prints it.
    let port = Enc::new().str(1, "").varint(3, 0);
    let svc = Enc::new().msg(2, Enc::new().msg(1, port).str(3, "").varint(13, 0));
    let decoded = decode_object(&wrap("v1", "Service", svc)).unwrap();
    assert_eq!(decoded["spec"], json!({"ports": [{"port": 0}]}));
}

#[test]
fn decodes_delete_options_of_any_group_version() {
    // client-go's typed clients (Helm's release storage) send DeleteOptions as protobuf, with
    // their own group's apiVersion.
    for api_version in ["v1", "apps/v1", "meta.k8s.io/v1"] {
        let options = Enc::new()
            .varint(1, 0)
            .msg(2, Enc::new().str(1, "uid-1"))
            .str(4, "Background");
        let decoded = decode_object(&wrap(api_version, "DeleteOptions", options)).unwrap();
        assert_eq!(decoded["kind"], "DeleteOptions");
        assert_eq!(decoded["gracePeriodSeconds"], 0, "{decoded}");
        assert_eq!(decoded["preconditions"], json!({"uid": "uid-1"}));
        assert_eq!(decoded["propagationPolicy"], "Background");
    }
}
