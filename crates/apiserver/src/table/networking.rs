//! Printers of `networking.k8s.io` (Ingress, IngressClass, NetworkPolicy) and
//! `discovery.k8s.io` (EndpointSlice).

use super::core::load_balancer_addresses;
use super::format::{format_label_selector, list, name, nonempty, s, with_more};
use super::{AGE, NAME, Printer, col};

pub(super) fn printer(group: &str, kind: &str) -> Option<&'static Printer> {
    Some(match (group, kind) {
        ("networking.k8s.io", "Ingress") => &INGRESS,
        ("networking.k8s.io", "IngressClass") => &INGRESS_CLASS,
        ("networking.k8s.io", "NetworkPolicy") => &NETWORK_POLICY,
        ("discovery.k8s.io", "EndpointSlice") => &ENDPOINT_SLICE,
        _ => return None,
    })
}

static INGRESS: Printer = Printer {
    columns: &[
        NAME,
        col("Class", "The IngressClass of the ingress"),
        col("Hosts", "Hosts that incoming requests are matched against"),
        col("Address", "Addresses of the ingress's load balancer"),
        col("Ports", "Ports the ingress serves"),
        AGE,
    ],
    row: |ing, ctx| {
        let spec = &ing["spec"];
        // Up to three hosts of the rules that have one; "+ N more..." counts every other rule.
        let rules = list(&spec["rules"]);
        let mut hosts = Vec::new();
        let mut more = false;
        for rule in rules {
            if hosts.len() == 3 {
                more = true;
            }
            if let Some(host) = nonempty(&rule["host"]).filter(|_| !more) {
                hosts.push(host.to_owned());
            }
        }
        let hosts = match (hosts.is_empty(), more) {
            (true, _) => "*".to_owned(),
            (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - 3),
            (false, false) => hosts.join(","),
        };
        let ports = if list(&spec["tls"]).is_empty() {
            "80"
        } else {
            "80, 443"
        };
        vec![
            name(ing).into(),
            nonempty(&spec["ingressClassName"]).unwrap_or("<none>").into(),
            hosts.into(),
            load_balancer_addresses(&ing["status"]["loadBalancer"])
                .join(",")
                .into(),
            ports.into(),
            ctx.age(ing).into(),
        ]
        .into()
    },
};

static INGRESS_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Controller",
            "Controller that is responsible for handling this class",
        ),
        col(
            "Parameters",
            "A reference to a resource with additional parameters",
        ),
        AGE,
    ],
    row: |class, ctx| {
        let params = &class["spec"]["parameters"];
        let parameters = if params.is_object() {
            match nonempty(&params["apiGroup"]) {
                Some(group) => format!("{}.{group}/{}", s(&params["kind"]), s(&params["name"])),
                None => format!("{}/{}", s(&params["kind"]), s(&params["name"])),
            }
        } else {
            "<none>".into()
        };
        vec![
            name(class).into(),
            s(&class["spec"]["controller"]).into(),
            parameters.into(),
            ctx.age(class).into(),
        ]
        .into()
    },
};

static NETWORK_POLICY: Printer = Printer {
    columns: &[NAME, col("Pod-Selector", "The pods the policy applies to"), AGE],
    row: |np, ctx| {
        vec![
            name(np).into(),
            format_label_selector(&np["spec"]["podSelector"]).into(),
            ctx.age(np).into(),
        ]
        .into()
    },
};

static ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        col("AddressType", "The type of the addresses (IPv4, IPv6, FQDN)"),
        col("Ports", "The ports of the endpoints"),
        col("Endpoints", "The endpoints' addresses"),
        AGE,
    ],
    row: |slice, ctx| {
        let ports: Vec<String> = list(&slice["ports"])
            .iter()
            .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
                (Some(port), _) => port.to_string(),
                (None, Some(name)) => name.to_owned(),
                (None, None) => "*".to_owned(),
            })
            .collect();
        let addresses: Vec<String> = list(&slice["endpoints"])
            .iter()
            .flat_map(|e| list(&e["addresses"]).iter().map(|a| s(a).to_owned()))
            .collect();
        let unset = |text: String| {
            if text.is_empty() {
                "<unset>".to_owned()
            } else {
                text
            }
        };
        vec![
            name(slice).into(),
            s(&slice["addressType"]).into(),
            unset(with_more(&ports, 3, ports.len(), ",")).into(),
            unset(with_more(&addresses, 3, addresses.len(), ",")).into(),
            ctx.age(slice).into(),
        ]
        .into()
    },
};

#[cfg(test)]
mod tests {
    use super::super::testing::{check, headers, meta};
    use serde_json::json;

    #[test]
    fn ingresses_and_classes() {
        assert_eq!(
            headers("networking.k8s.io", "Ingress"),
            ["Name", "Class", "Hosts", "Address", "Ports", "Age"]
        );
        check(
            "networking.k8s.io",
            "Ingress",
            &[
                (
                    json!({"metadata": meta("web"), "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                        "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}]},
                       "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}}}),
                    json!([
                        "web",
                        "nginx",
                        "a.example.com,b.example.com",
                        "203.0.113.9,lb.example.com",
                        "80, 443",
                        "60m"
                    ]),
                ),
                (
                    json!({"metadata": meta("any"), "spec": {"rules": [{}]}}),
                    json!(["any", "<none>", "*", "", "80", "60m"]),
                ),
                (
                    json!({"metadata": meta("many"), "spec": {"rules": [
                    {"host": "a"}, {}, {"host": "b"}, {"host": "c"}, {"host": "d"}, {"host": "e"}]}}),
                    json!(["many", "<none>", "a,b,c + 3 more...", "", "80", "60m"]),
                ),
            ],
        );
        assert_eq!(
            headers("networking.k8s.io", "IngressClass"),
            ["Name", "Controller", "Parameters", "Age"]
        );
        check(
            "networking.k8s.io",
            "IngressClass",
            &[
                (
                    json!({"metadata": meta("nginx"), "spec": {"controller": "k8s.io/ingress-nginx",
                        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}}),
                    json!([
                        "nginx",
                        "k8s.io/ingress-nginx",
                        "IngressParameters.k8s.example.com/p",
                        "60m"
                    ]),
                ),
                (
                    json!({"metadata": meta("plain"), "spec": {"controller": "example.com/c"}}),
                    json!(["plain", "example.com/c", "<none>", "60m"]),
                ),
            ],
        );
    }

    #[test]
    fn network_policies_and_endpoint_slices() {
        assert_eq!(
            headers("networking.k8s.io", "NetworkPolicy"),
            ["Name", "Pod-Selector", "Age"]
        );
        check(
            "networking.k8s.io",
            "NetworkPolicy",
            &[
                (
                    json!({"metadata": meta("deny"), "spec": {"podSelector": {}}}),
                    json!(["deny", "<none>", "60m"]),
                ),
                (
                    json!({"metadata": meta("web"), "spec": {"podSelector": {"matchLabels": {"role": "db"}}}}),
                    json!(["web", "role=db", "60m"]),
                ),
            ],
        );
        assert_eq!(
            headers("discovery.k8s.io", "EndpointSlice"),
            ["Name", "AddressType", "Ports", "Endpoints", "Age"]
        );
        check(
            "discovery.k8s.io",
            "EndpointSlice",
            &[
                (
                    json!({"metadata": meta("web-abc"), "addressType": "IPv4",
                       "ports": [{"port": 80, "name": "http"}, {"name": "metrics"}, {}, {"port": 9000}],
                       "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]}),
                    json!([
                        "web-abc",
                        "IPv4",
                        "80,metrics,* + 1 more...",
                        "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
                        "60m"
                    ]),
                ),
                (
                    json!({"metadata": meta("empty"), "addressType": "IPv6"}),
                    json!(["empty", "IPv6", "<unset>", "<unset>", "60m"]),
                ),
            ],
        );
    }
}
