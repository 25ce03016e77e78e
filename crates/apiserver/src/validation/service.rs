//! Services (`ValidateService`, `ValidateServiceUpdate`). Address and port ranges and
//! collisions are the allocator's.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Errs;
use super::gorepr::quote;
use super::meta::{dns1123_label, dns1123_subdomain, labels_of};
use super::pod::{port_name, port_number};

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const AFFINITIES: &[&str] = &["ClientIP", "None"];

pub fn service(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = &obj["spec"];
    let kind = spec["type"].as_str().unwrap_or_default();
    let headless = spec["clusterIP"] == "None";
    let ports: &[Value] = spec["ports"].as_array().map_or(&[], Vec::as_slice);
    if ports.is_empty() && !headless && kind != "ExternalName" {
        errs.required("spec.ports");
    }
    if kind == "ExternalName" {
        if spec["clusterIPs"].as_array().is_some_and(|a| !a.is_empty()) {
            errs.forbidden("spec.clusterIPs", "may not be set for ExternalName services");
        }
        let cname = spec["externalName"]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('.');
        if cname.is_empty() {
            errs.required("spec.externalName");
        } else {
            for msg in dns1123_subdomain(cname) {
                errs.invalid("spec.externalName", &Value::String(cname.to_owned()), &msg);
            }
        }
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        match port["name"].as_str().filter(|n| !n.is_empty()) {
            None if ports.len() > 1 => errs.required(&format!("{path}.name")),
            None => {}
            Some(name) => {
                for msg in dns1123_label(name) {
                    errs.invalid(&format!("{path}.name"), &port["name"], &msg);
                }
                if !names.insert(name.to_owned()) {
                    errs.duplicate(&format!("{path}.name"), &quote(name));
                }
            }
        }
        port_number(port["port"].as_i64().unwrap_or(0), &format!("{path}.port"), errs);
        match port["protocol"].as_str() {
            None | Some("") => errs.required(&format!("{path}.protocol")),
            Some(p) if PROTOCOLS.contains(&p) => {}
            Some(_) => errs.not_supported(&format!("{path}.protocol"), &port["protocol"], PROTOCOLS),
        }
        match &port["targetPort"] {
            Value::String(name) => {
                for msg in port_name(name) {
                    errs.invalid(&format!("{path}.targetPort"), &port["targetPort"], &msg);
                }
            }
            Value::Number(n) => port_number(n.as_i64().unwrap_or(0), &format!("{path}.targetPort"), errs),
            _ => {}
        }
    }
    if let Some(selector) = spec["selector"].as_object() {
        labels_of(selector, "spec.selector", errs);
    }
    match spec["sessionAffinity"].as_str() {
        None | Some("") => errs.required("spec.sessionAffinity"),
        Some(a) if AFFINITIES.contains(&a) => {}
        Some(_) => errs.not_supported("spec.sessionAffinity", &spec["sessionAffinity"], AFFINITIES),
    }
    match spec["type"].as_str() {
        None | Some("") => errs.required("spec.type"),
        Some(t) if TYPES.contains(&t) => {}
        Some(_) => errs.not_supported("spec.type", &spec["type"], TYPES),
    }
    if kind == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if port["nodePort"].as_i64().is_some_and(|n| n != 0) {
                errs.forbidden(
                    &format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                );
            }
        }
    }
    // The same (nodePort, protocol) twice.
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let Some(node_port) = port["nodePort"].as_i64().filter(|n| *n != 0) else {
            continue;
        };
        let protocol = port["protocol"].as_str().unwrap_or_default().to_owned();
        if !node_ports.insert((node_port, protocol)) {
            errs.duplicate(&format!("spec.ports[{i}].nodePort"), &node_port.to_string());
        }
    }
    // The same (port, protocol) twice.
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let key = (
            port["port"].as_i64().unwrap_or(0),
            port["protocol"].as_str().unwrap_or_default().to_owned(),
        );
        if !seen.insert(key.clone()) {
            errs.duplicate(
                &format!("spec.ports[{i}]"),
                &format!(
                    "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                    quote(&key.1),
                    key.0
                ),
            );
        }
    }
    if let Some(old) = old {
        let was_external = old["spec"]["type"] == "ExternalName";
        let (new_ips, old_ips) = (&spec["clusterIPs"], &old["spec"]["clusterIPs"]);
        if kind != "ExternalName"
            && !was_external
            && let (Some(new0), Some(old0)) = (new_ips.get(0), old_ips.get(0))
            && new0 != old0
        {
            errs.invalid("spec.clusterIPs[0]", new0, "may not change once set");
        }
    }
}
