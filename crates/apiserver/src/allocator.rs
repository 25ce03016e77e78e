//! Service ClusterIPs and NodePorts. Each allocated address or port is one store key,
//! `/registry/ranges/serviceips/<ip>` and `/registry/ranges/servicenodeports/<port>`, whose
//! value names the owning Service. Keys are claimed (compare "absent") and released in the same
//! transaction that writes or deletes the Service, so allocations are consistent under
//! concurrent creates and survive restarts, and a lost race is simply retried.

use std::collections::BTreeSet;
use std::net::IpAddr;

use apimachinery::resources::ResourceDef;
use apimachinery::status::{ApiError, Cause};
use bytes::Bytes;
use serde_json::{Value, json};
use store::{Compare, KeyRange, Op, RangeRequest, Store, Txn};

use crate::rest::store_error;

const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

/// The ranges Services draw from.
#[derive(Clone, Debug)]
pub struct ServiceRanges {
    base: IpAddr,
    prefix_len: u8,
    node_ports: (u16, u16),
}

/// What a Service write claims and releases, to go into the write's transaction.
#[derive(Debug, Default)]
pub struct Claims {
    /// Keys that must not exist yet, with the owner to record.
    pub claim: Vec<(String, Bytes)>,
    pub release: Vec<String>,
}

impl Claims {
    /// The transaction that writes `key` (created when `expected` is None, else replaced at
    /// that revision) together with the claims; its failure branch reads `key`.
    pub fn write_txn(&self, key: &str, value: Bytes, expected: Option<i64>) -> Txn {
        let mut compare = match expected {
            None => vec![Compare::absent(key)],
            Some(rev) => vec![
                Compare::mod_revision(key, store::CompareOp::Equal, rev),
                Compare::exists(key),
            ],
        };
        compare.extend(self.claim.iter().map(|(k, _)| Compare::absent(k)));
        let mut txn = Txn::when(compare).then(Op::put(key, value, None));
        for (k, owner) in &self.claim {
            txn = txn.then(Op::put(k, owner.clone(), None));
        }
        for k in &self.release {
            txn = txn.then(Op::delete(k));
        }
        txn.otherwise(Op::get(key))
    }

    /// The transaction that deletes `key` at revision `expected` and releases the claims.
    pub fn delete_txn(&self, key: &str, expected: i64) -> Txn {
        let mut txn = Txn::when(vec![
            Compare::exists(key),
            Compare::mod_revision(key, store::CompareOp::Equal, expected),
        ])
        .then(Op::delete(key));
        for k in &self.release {
            txn = txn.then(Op::delete(k));
        }
        txn.otherwise(Op::get(key))
    }
}

fn is_service(def: &ResourceDef) -> bool {
    (def.group, def.plural) == ("", "services")
}

fn service_type(svc: &Value) -> &str {
    svc["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

fn needs_cluster_ip(svc: &Value) -> bool {
    service_type(svc) != "ExternalName"
}

fn needs_node_ports(svc: &Value) -> bool {
    match service_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc["spec"]["allocateLoadBalancerNodePorts"].as_bool() != Some(false),
        _ => false,
    }
}

fn needs_health_check_port(svc: &Value) -> bool {
    service_type(svc) == "LoadBalancer" && svc["spec"]["externalTrafficPolicy"] == "Local"
}

/// The keys a stored Service holds.
fn held_keys(svc: &Value) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for ip in svc["spec"]["clusterIPs"].as_array().into_iter().flatten() {
        if let Some(ip) = ip.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
            keys.insert(format!("{IP_PREFIX}{ip}"));
        }
    }
    for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
        if let Some(port) = p["nodePort"].as_u64().filter(|p| *p != 0) {
            keys.insert(format!("{PORT_PREFIX}{port}"));
        }
    }
    if let Some(port) = svc["spec"]["healthCheckNodePort"].as_u64().filter(|p| *p != 0) {
        keys.insert(format!("{PORT_PREFIX}{port}"));
    }
    keys
}

/// What deleting a stored object releases.
pub fn release_on_delete(def: &ResourceDef, obj: &Value) -> Claims {
    if !is_service(def) {
        return Claims::default();
    }
    Claims {
        claim: Vec::new(),
        release: held_keys(obj).into_iter().collect(),
    }
}

impl ServiceRanges {
    /// `cidr` such as `10.43.0.0/16`; node ports `first..=last`.
    pub fn new(cidr: &str, node_ports: (u16, u16)) -> anyhow::Result<Self> {
        let bad = || anyhow::anyhow!("the service CIDR {cidr:?} is not a CIDR");
        let (base, len) = cidr.split_once('/').ok_or_else(bad)?;
        let base: IpAddr = base.parse().map_err(|_| bad())?;
        let prefix_len: u8 = len.parse().map_err(|_| bad())?;
        let bits = if base.is_ipv4() { 32 } else { 128 };
        if prefix_len > bits || bits - prefix_len < 2 || (base.is_ipv6() && bits - prefix_len > 64) {
            anyhow::bail!("the service CIDR {cidr:?} is too small or too large");
        }
        anyhow::ensure!(node_ports.0 <= node_ports.1, "empty node port range");
        let ranges = ServiceRanges {
            base,
            prefix_len,
            node_ports,
        };
        Ok(ServiceRanges {
            base: ranges.ip_at(0),
            ..ranges
        })
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", self.base, self.prefix_len)
    }

    fn family(&self) -> &'static str {
        if self.base.is_ipv4() { "IPv4" } else { "IPv6" }
    }

    fn host_bits(&self) -> u32 {
        (if self.base.is_ipv4() { 32 } else { 128 }) - u32::from(self.prefix_len)
    }

    fn as_u128(ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        }
    }

    /// The address `offset` from the start of the range (masked to the network).
    fn ip_at(&self, offset: u128) -> IpAddr {
        let mask = !((1u128 << self.host_bits()) - 1);
        let n = (Self::as_u128(self.base) & mask) + offset;
        if self.base.is_ipv4() {
            IpAddr::V4((n as u32).into())
        } else {
            IpAddr::V6(n.into())
        }
    }

    /// The first usable address: the `kubernetes` Service's.
    pub fn first_ip(&self) -> IpAddr {
        self.ip_at(1)
    }

    /// Usable offsets: the network address and (for IPv4) the broadcast address are not.
    fn usable(&self) -> (u128, u128) {
        let size = 1u128 << self.host_bits();
        (1, if self.base.is_ipv4() { size - 2 } else { size - 1 })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.base.is_ipv4() {
            return false;
        }
        let offset = Self::as_u128(ip).wrapping_sub(Self::as_u128(self.base));
        let (lo, hi) = self.usable();
        Self::as_u128(ip) >= Self::as_u128(self.base) && (lo..=hi).contains(&offset)
    }

    /// Fills in a Service's ClusterIPs, IP families and NodePorts (keeping those of `old` on
    /// update) and returns what the write must claim and release. Other kinds claim nothing.
    pub async fn allocate(
        &self,
        store: &dyn Store,
        def: &ResourceDef,
        svc: &mut Value,
        old: Option<&Value>,
    ) -> Result<Claims, ApiError> {
        if !is_service(def) || !svc["spec"].is_object() {
            return Ok(Claims::default());
        }
        if let Some(old) = old {
            keep_allocated(old, svc);
        }
        let owner = Bytes::from(
            json!({"namespace": svc["metadata"]["namespace"], "name": svc["metadata"]["name"]}).to_string(),
        );
        let name = svc["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let held = old.map(held_keys).unwrap_or_default();
        let taken = |key: &str, used: &BTreeSet<String>| used.contains(key) && !held.contains(key);
        let mut causes = Vec::new();
        let mut claimed: BTreeSet<String> = BTreeSet::new();

        if needs_cluster_ip(svc) {
            let used = self.used(store, IP_PREFIX).await?;
            self.cluster_ip(svc, &used, &held, &mut claimed, &mut causes);
        } else if old.is_none() {
            let spec = svc["spec"].as_object_mut().expect("checked above");
            for key in ["ipFamilies", "ipFamilyPolicy"] {
                spec.remove(key);
            }
        }
        let wants_ports = needs_node_ports(svc);
        let wants_health = needs_health_check_port(svc);
        if wants_ports || wants_health {
            let mut used = self.used(store, PORT_PREFIX).await?;
            let count = svc["spec"]["ports"].as_array().map_or(0, Vec::len);
            let mut mine: BTreeSet<u64> = BTreeSet::new();
            for i in 0..count {
                let port = &mut svc["spec"]["ports"][i];
                if !port.is_object() {
                    continue; // validation reports it
                }
                match port["nodePort"].as_u64().filter(|p| *p != 0) {
                    Some(p) => {
                        let key = format!("{PORT_PREFIX}{p}");
                        if !(u64::from(self.node_ports.0)..=u64::from(self.node_ports.1)).contains(&p) {
                            causes.push(port_cause(i, p, &self.not_in_range()));
                        } else if taken(&key, &used) && !mine.contains(&p) {
                            causes.push(port_cause(i, p, "provided port is already allocated"));
                        } else {
                            mine.insert(p);
                            claimed.insert(key);
                        }
                    }
                    None if wants_ports => match self.free_port(&used) {
                        Some(p) => {
                            port["nodePort"] = p.into();
                            mine.insert(u64::from(p));
                            let key = format!("{PORT_PREFIX}{p}");
                            used.insert(key.clone());
                            claimed.insert(key);
                        }
                        None => causes.push(port_cause(i, 0, "range is full")),
                    },
                    None => {}
                }
            }
            if wants_health {
                match svc["spec"]["healthCheckNodePort"].as_u64().filter(|p| *p != 0) {
                    Some(p) => {
                        let key = format!("{PORT_PREFIX}{p}");
                        if taken(&key, &used) {
                            causes.push(Cause::invalid(
                                "spec.healthCheckNodePort",
                                &json!(p),
                                "provided port is already allocated",
                            ));
                        } else {
                            claimed.insert(key);
                        }
                    }
                    None => {
                        if let Some(p) = self.free_port(&used) {
                            svc["spec"]["healthCheckNodePort"] = p.into();
                            claimed.insert(format!("{PORT_PREFIX}{p}"));
                        }
                    }
                }
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid("", "Service", &name, causes));
        }
        Ok(Claims {
            claim: claimed
                .iter()
                .filter(|k| !held.contains(*k))
                .map(|k| (k.clone(), owner.clone()))
                .collect(),
            release: held.difference(&claimed).cloned().collect(),
        })
    }

    fn cluster_ip(
        &self,
        svc: &mut Value,
        used: &BTreeSet<String>,
        held: &BTreeSet<String>,
        claimed: &mut BTreeSet<String>,
        causes: &mut Vec<Cause>,
    ) {
        let spec = svc["spec"].as_object_mut().expect("checked by the caller");
        let family = self.family();
        let requested = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or_else(|| {
                spec.get("clusterIPs")
                    .and_then(|a| a.get(0))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            })
            .map(str::to_owned);
        let headless = requested.as_deref() == Some("None");
        if spec.get("ipFamilyPolicy").is_none_or(Value::is_null) {
            let selectorless = spec
                .get("selector")
                .and_then(Value::as_object)
                .is_none_or(|s| s.is_empty());
            let policy = if headless && selectorless {
                "RequireDualStack"
            } else {
                "SingleStack"
            };
            spec.insert("ipFamilyPolicy".into(), policy.into());
        }
        let policy = spec.get("ipFamilyPolicy").cloned().unwrap_or(Value::Null);
        match policy.as_str() {
            Some("SingleStack" | "PreferDualStack") => {}
            Some("RequireDualStack") if headless => {}
            Some("RequireDualStack") => causes.push(Cause::invalid(
                "spec.ipFamilyPolicy",
                &policy,
                "this cluster is not configured for dual-stack services",
            )),
            _ => causes.push(Cause::not_supported(
                "spec.ipFamilyPolicy",
                &policy,
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            )),
        }
        match spec.get("ipFamilies").and_then(Value::as_array) {
            Some(families) if !families.is_empty() => {
                for (i, f) in families.iter().enumerate() {
                    if f.as_str() != Some(family) {
                        causes.push(Cause::invalid(
                            &format!("spec.ipFamilies[{i}]"),
                            f,
                            "not configured on this cluster",
                        ));
                    }
                }
            }
            _ => {
                spec.insert("ipFamilies".into(), json!([family]));
            }
        }
        let ip = match requested {
            Some(r) if r == "None" => {
                spec.insert("clusterIP".into(), "None".into());
                spec.insert("clusterIPs".into(), json!(["None"]));
                return;
            }
            Some(r) => {
                let shown = format!("[]string{{{r:?}}}");
                let fail = |msg: String| {
                    Cause::new(
                        "FieldValueInvalid",
                        "spec.clusterIPs",
                        format!("Invalid value: {shown}: failed to allocate IP {r}: {msg}"),
                    )
                };
                let Ok(ip) = r.parse::<IpAddr>() else {
                    causes.push(Cause::invalid(
                        "spec.clusterIPs[0]",
                        &Value::String(r.clone()),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    ));
                    return;
                };
                let key = format!("{IP_PREFIX}{ip}");
                if !self.contains(ip) {
                    causes.push(fail(format!(
                        "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                        self.cidr()
                    )));
                    return;
                }
                if used.contains(&key) && !held.contains(&key) {
                    causes.push(fail("provided IP is already allocated".into()));
                    return;
                }
                ip
            }
            None => match self.free_ip(used) {
                Some(ip) => ip,
                None => {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        "spec.clusterIPs",
                        "failed to allocate a serviceIP: range is full",
                    ));
                    return;
                }
            },
        };
        spec.insert("clusterIP".into(), ip.to_string().into());
        spec.insert("clusterIPs".into(), json!([ip.to_string()]));
        claimed.insert(format!("{IP_PREFIX}{ip}"));
    }

    fn not_in_range(&self) -> String {
        format!(
            "provided port is not in the valid range. The range of valid ports is {}-{}",
            self.node_ports.0, self.node_ports.1
        )
    }

    async fn used(&self, store: &dyn Store, prefix: &str) -> Result<BTreeSet<String>, ApiError> {
        let resp = store
            .range(RangeRequest::new(KeyRange::prefix(prefix)))
            .await
            .map_err(store_error)?;
        Ok(resp.kvs.into_iter().map(|kv| kv.key).collect())
    }

    /// A free address, scanning from a random offset (the first address is the
    /// `kubernetes` Service's).
    fn free_ip(&self, used: &BTreeSet<String>) -> Option<IpAddr> {
        let (lo, hi) = self.usable();
        let lo = lo + 1;
        if hi < lo {
            return None;
        }
        let span = (hi - lo + 1).min(1 << 20);
        let start = random() % span;
        (0..span)
            .map(|i| self.ip_at(lo + (start + i) % span))
            .find(|ip| !used.contains(&format!("{IP_PREFIX}{ip}")))
    }

    fn free_port(&self, used: &BTreeSet<String>) -> Option<u16> {
        let (lo, hi) = (u128::from(self.node_ports.0), u128::from(self.node_ports.1));
        let span = hi - lo + 1;
        let start = random() % span;
        (0..span)
            .map(|i| (lo + (start + i) % span) as u16)
            .find(|p| !used.contains(&format!("{PORT_PREFIX}{p}")))
    }
}

fn port_cause(i: usize, port: u64, detail: &str) -> Cause {
    Cause::invalid(&format!("spec.ports[{i}].nodePort"), &json!(port), detail)
}

fn random() -> u128 {
    u128::from_le_bytes(uuid::Uuid::new_v4().into_bytes())
}

/// On update, an omitted ClusterIP or NodePort keeps the allocated one (upstream's
/// `patchAllocatedValues`); a type change that no longer needs them drops them when the client
/// left them as they were (`dropTypeDependentFields`).
fn keep_allocated(old: &Value, new: &mut Value) {
    if !new["spec"].is_object() {
        return;
    }
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if new["spec"][key].is_null() || new["spec"][key] == "" {
                new["spec"][key] = old["spec"][key].clone();
            }
        }
    }
    if needs_cluster_ip(old)
        && !needs_cluster_ip(new)
        && new["spec"]["clusterIPs"] == old["spec"]["clusterIPs"]
        && let Some(spec) = new["spec"].as_object_mut()
    {
        for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            spec.remove(key);
        }
    }
    let old_ports: Vec<(Value, Value)> = old["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["name"].clone(), p["nodePort"].clone()))
        .collect();
    if needs_node_ports(old) && needs_node_ports(new) {
        let in_use: BTreeSet<u64> = new["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["nodePort"].as_u64())
            .collect();
        for p in new["spec"]["ports"].as_array_mut().into_iter().flatten() {
            if p.is_object()
                && p["nodePort"].as_u64().is_none_or(|n| n == 0)
                && let Some((_, port)) = old_ports.iter().find(|(n, _)| *n == p["name"])
                && port.as_u64().is_some_and(|n| !in_use.contains(&n))
            {
                p["nodePort"] = port.clone();
            }
        }
    }
    if !needs_node_ports(new) && needs_node_ports(old) {
        let same = new["spec"]["ports"].as_array().into_iter().flatten().all(|p| {
            old_ports
                .iter()
                .any(|(n, np)| *n == p["name"] && *np == p["nodePort"])
        });
        if same {
            for p in new["spec"]["ports"].as_array_mut().into_iter().flatten() {
                if let Some(p) = p.as_object_mut() {
                    p.remove("nodePort");
                }
            }
        }
    }
    if needs_health_check_port(old)
        && needs_health_check_port(new)
        && new["spec"]["healthCheckNodePort"].is_null()
    {
        new["spec"]["healthCheckNodePort"] = old["spec"]["healthCheckNodePort"].clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_know_their_addresses() {
        let r = ServiceRanges::new("10.43.7.9/16", (30000, 32767)).unwrap();
        assert_eq!(r.cidr(), "10.43.0.0/16");
        assert_eq!(r.first_ip().to_string(), "10.43.0.1");
        assert!(r.contains("10.43.255.254".parse().unwrap()));
        assert!(!r.contains("10.43.255.255".parse().unwrap()));
        assert!(!r.contains("10.43.0.0".parse().unwrap()));
        assert!(!r.contains("10.44.0.1".parse().unwrap()));
        assert!(ServiceRanges::new("10.0.0.0/31", (1, 2)).is_err());
        assert!(ServiceRanges::new("nonsense", (1, 2)).is_err());
        let v6 = ServiceRanges::new("fd00::/108", (30000, 32767)).unwrap();
        assert_eq!(v6.first_ip().to_string(), "fd00::1");
    }

    #[test]
    fn free_addresses_avoid_used_ones() {
        let r = ServiceRanges::new("10.0.0.0/29", (30000, 30001)).unwrap();
        let mut used = BTreeSet::new();
        for i in 2..=5 {
            used.insert(format!("{IP_PREFIX}10.0.0.{i}"));
        }
        assert_eq!(r.free_ip(&used).unwrap().to_string(), "10.0.0.6");
        used.insert(format!("{IP_PREFIX}10.0.0.6"));
        assert_eq!(r.free_ip(&used), None);
        used.insert(format!("{PORT_PREFIX}30000"));
        assert_eq!(r.free_port(&used), Some(30001));
    }

    #[test]
    fn odd_shapes_do_not_panic() {
        let old = json!({"spec": {"type": "NodePort", "ports": [{"name": "a", "nodePort": 30001}]}});
        let mut new = json!({"spec": {"type": "NodePort", "ports": [1, "x", null]}});
        keep_allocated(&old, &mut new);
        let mut new = json!({"spec": "x"});
        keep_allocated(&old, &mut new);
    }

    #[test]
    fn updates_keep_allocated_values() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.0.0.3", "clusterIPs": ["10.0.0.3"],
            "ports": [{"name": "a", "port": 80, "nodePort": 30001}]}});
        let mut new = json!({"spec": {"type": "NodePort", "ports": [{"name": "a", "port": 81}]}});
        keep_allocated(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.0.0.3");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30001);
        let mut cluster_ip = old.clone();
        cluster_ip["spec"]["type"] = "ClusterIP".into();
        keep_allocated(&old, &mut cluster_ip);
        assert!(cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
    }
}
