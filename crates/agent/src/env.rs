//! A container's environment as the kubelet's `makeEnvironmentVariables` builds it: service
//! links, `envFrom` (ConfigMaps and Secrets, with prefix; invalid names skipped), then `env`
//! in order — literal values with `$(VAR)` expansion over what is defined so far and the
//! service variables (`$$` escapes), or `valueFrom` a ConfigMap / Secret key, a pod field or a
//! container resource. Errors read as the kubelet's CreateContainerConfigError messages.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod, Service};

use crate::downward;
pub use crate::downward::NodeFacts;
use crate::objects::ObjectCache;

/// Why a container's environment cannot be built (the kubelet's wording, e.g.
/// `configmap "x" not found`, `couldn't find key k in ConfigMap ns/x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError(pub String);

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EnvError {}

/// The environment, and the warnings the kubelet records as `InvalidEnvironmentVariableNames`
/// events (`Keys [a, b] from the EnvFrom configMap ns/x were skipped since they are considered
/// invalid environment variable names.`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    pub vars: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// The services always linked, from the `default` namespace (upstream's master services).
const MASTER_SERVICES: &[&str] = &["kubernetes"];

/// See the module docs.
pub async fn container_env(
    objects: &ObjectCache,
    pod: &Pod,
    container: &Container,
    node: &NodeFacts,
    pod_ips: &[String],
) -> Result<Vec<(String, String)>, EnvError> {
    Ok(container_environment(objects, pod, container, node, pod_ips)
        .await?
        .vars)
}

/// [`container_env`] with its warnings.
pub async fn container_environment(
    objects: &ObjectCache,
    pod: &Pod,
    container: &Container,
    node: &NodeFacts,
    pod_ips: &[String],
) -> Result<Environment, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let spec = pod.spec.as_ref();
    let links = spec.and_then(|s| s.enable_service_links).unwrap_or(true);
    let mut services = objects.services("default").await.map_err(EnvError)?;
    if namespace != "default" {
        services.extend(objects.services(namespace).await.map_err(EnvError)?);
    }
    let service_env = service_env_map(namespace, links, services.iter().map(|s| &**s));

    let mut env = Ordered::default();
    let mut warnings = Vec::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let (kind, name, entries) = if let Some(r) = &from.config_map_ref {
            let cm = objects.config_map(namespace, &r.name).await.map_err(EnvError)?;
            match cm {
                Some(cm) => ("configMap", &r.name, cm.data.clone().unwrap_or_default()),
                None if r.optional.unwrap_or(false) => continue,
                None => return Err(EnvError(format!("configmap {:?} not found", r.name))),
            }
        } else if let Some(r) = &from.secret_ref {
            let secret = objects.secret(namespace, &r.name).await.map_err(EnvError)?;
            match secret {
                Some(s) => {
                    let data = s.data.clone().unwrap_or_default();
                    let data: BTreeMap<String, String> = data
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect();
                    ("secret", &r.name, data)
                }
                None if r.optional.unwrap_or(false) => continue,
                None => return Err(EnvError(format!("secret {:?} not found", r.name))),
            }
        } else {
            continue;
        };
        let mut invalid = Vec::new();
        for (key, value) in entries {
            let key = format!("{prefix}{key}");
            if !is_env_var_name(&key) {
                invalid.push(key);
                continue;
            }
            env.set(key, value);
        }
        if !invalid.is_empty() {
            invalid.sort();
            warnings.push(format!(
                "Keys [{}] from the EnvFrom {kind} {namespace}/{name} were skipped since they are considered invalid environment variable names.",
                invalid.join(", ")
            ));
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) if !v.is_empty() => {
                let lookup = |name: &str| env.get(name).or_else(|| service_env.get(name).cloned());
                expand(v, &lookup)
            }
            (_, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    downward::field_value(pod, &field.field_path, node, pod_ips).map_err(EnvError)?
                } else if let Some(resource) = &from.resource_field_ref {
                    let target = match resource.container_name.as_deref().filter(|n| !n.is_empty()) {
                        Some(name) => spec
                            .into_iter()
                            .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
                            .find(|c| c.name == name)
                            .ok_or_else(|| EnvError(format!("container {name} not found")))?,
                        None => container,
                    };
                    downward::resource_value(target, resource, node).map_err(EnvError)?
                } else if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    let Some(cm) = objects.config_map(namespace, &r.name).await.map_err(EnvError)? else {
                        if optional {
                            continue;
                        }
                        return Err(EnvError(format!("configmap {:?} not found", r.name)));
                    };
                    match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in ConfigMap {namespace}/{}",
                                r.key, r.name
                            )));
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    let Some(secret) = objects.secret(namespace, &r.name).await.map_err(EnvError)? else {
                        if optional {
                            continue;
                        }
                        return Err(EnvError(format!("secret {:?} not found", r.name)));
                    };
                    match secret.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in Secret {namespace}/{}",
                                r.key, r.name
                            )));
                        }
                    }
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        env.set(var.name.clone(), value);
    }
    let mut vars = env.into_vec();
    let mut links: Vec<(String, String)> = service_env
        .into_iter()
        .filter(|(k, _)| !vars.iter().any(|(d, _)| d == k))
        .collect();
    links.sort();
    vars.extend(links);
    Ok(Environment { vars, warnings })
}

/// Variables in definition order; a redefinition replaces the value in place.
#[derive(Default)]
struct Ordered {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Ordered {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.index.get(name).map(|&i| self.vars[i].1.clone())
    }

    fn into_vec(self) -> Vec<(String, String)> {
        self.vars
    }
}

/// upstream's `validation.IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// `$(VAR)` expansion as upstream's `third_party/forked/golang/expansion`: `$$` is a `$`, an
/// unknown or unterminated reference stays as written.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match lookup(name) {
                            Some(v) => out.push_str(&v),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // `$` and the next character, as written.
                    let next = rest.chars().next().expect("not empty");
                    out.push('$');
                    out.push(next);
                    next.len_utf8()
                }
            };
            cursor += advance + 1;
            checkpoint = cursor;
        } else {
            cursor += 1;
        }
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

/// upstream's `getServiceEnvVarMap` and `envvars.FromServices`: the `default` namespace's
/// master services always, the pod namespace's services when service links are on; only
/// services with a ClusterIP.
pub fn service_env_map<'a>(
    namespace: &str,
    enable_service_links: bool,
    services: impl Iterator<Item = &'a Service>,
) -> HashMap<String, String> {
    let mut chosen: BTreeMap<String, &Service> = BTreeMap::new();
    for service in services {
        let ip = service
            .spec
            .as_ref()
            .and_then(|s| s.cluster_ip.as_deref())
            .unwrap_or("");
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let name = service.metadata.name.clone().unwrap_or_default();
        let ns = service.metadata.namespace.as_deref().unwrap_or("");
        if ns == "default" && MASTER_SERVICES.contains(&name.as_str()) {
            chosen.entry(name).or_insert(service);
        } else if ns == namespace && enable_service_links {
            chosen.insert(name, service);
        }
    }
    chosen.values().flat_map(|s| service_vars(s)).collect()
}

fn env_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// The variables of one service (`FromServices` and the Docker-style link variables).
pub fn service_vars(service: &Service) -> Vec<(String, String)> {
    let spec = service.spec.as_ref();
    let ip = spec.and_then(|s| s.cluster_ip.clone()).unwrap_or_default();
    let ports = spec.and_then(|s| s.ports.clone()).unwrap_or_default();
    let Some(first) = ports.first() else {
        return Vec::new();
    };
    let prefix = env_name(service.metadata.name.as_deref().unwrap_or_default());
    let mut out = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.clone()),
        (format!("{prefix}_SERVICE_PORT"), first.port.to_string()),
    ];
    for port in &ports {
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", env_name(name)),
                port.port.to_string(),
            ));
        }
    }
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.clone()
    };
    for (i, port) in ports.iter().enumerate() {
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        let lower = protocol.to_lowercase();
        let url = format!("{lower}://{host}:{}", port.port);
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
        out.push((port_prefix.clone(), url));
        out.push((format!("{port_prefix}_PROTO"), lower));
        out.push((format!("{port_prefix}_PORT"), port.port.to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "A" => Some("a".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_as_upstream() {
        let cases = [
            ("$(A)", "a"),
            ("x$(A)y$(A)", "xaya"),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$a"),
            ("$$$$(A)", "$$(A)"),
            ("$(A", "$(A"),
            ("$A", "$A"),
            ("a$", "a$"),
            ("$(EMPTY)x", "x"),
            ("$()", "$()"),
            ("é$(A)é", "éaé"),
            ("$é", "$é"),
            ("plain", "plain"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &lookup), want, "{input}");
        }
    }

    #[test]
    fn env_var_names() {
        assert!(is_env_var_name("A_b-1.c"));
        assert!(is_env_var_name("_x"));
        assert!(!is_env_var_name("1abc"));
        assert!(!is_env_var_name("a b"));
        assert!(!is_env_var_name(""));
    }

    fn service(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .unwrap()
    }

    #[test]
    fn service_links_as_upstream() {
        let services = [
            service(
                "default",
                "kubernetes",
                "10.43.0.1",
                serde_json::json!([{"name": "https", "port": 443}]),
            ),
            service(
                "app",
                "my-svc",
                "10.43.0.9",
                serde_json::json!([
                {"port": 80},
                {"name": "dns-udp", "port": 53, "protocol": "UDP"}]),
            ),
            service("app", "headless", "None", serde_json::json!([{"port": 1}])),
            service(
                "other",
                "elsewhere",
                "10.43.0.7",
                serde_json::json!([{"port": 1}]),
            ),
        ];
        let env = service_env_map("app", true, services.iter());
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.43.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT"), Some("tcp://10.43.0.1:443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP"), Some("tcp://10.43.0.1:443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_PROTO"), Some("tcp"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_ADDR"), Some("10.43.0.1"));
        assert_eq!(get("MY_SVC_SERVICE_HOST"), Some("10.43.0.9"));
        assert_eq!(get("MY_SVC_SERVICE_PORT"), Some("80"));
        assert_eq!(get("MY_SVC_SERVICE_PORT_DNS_UDP"), Some("53"));
        assert_eq!(get("MY_SVC_PORT"), Some("tcp://10.43.0.9:80"));
        assert_eq!(get("MY_SVC_PORT_53_UDP"), Some("udp://10.43.0.9:53"));
        assert_eq!(get("MY_SVC_PORT_53_UDP_PROTO"), Some("udp"));
        assert!(get("HEADLESS_SERVICE_HOST").is_none());
        assert!(get("ELSEWHERE_SERVICE_HOST").is_none());
        assert_eq!(env.len(), 8 + 12);
        // Links off: only the master service.
        let env = service_env_map("app", false, services.iter());
        assert_eq!(env.len(), 8);
        assert!(env.contains_key("KUBERNETES_SERVICE_HOST"));
    }
}
