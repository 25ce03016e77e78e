//! Chain and set names, as kube-proxy forms them: a readable base (`ns/name/proto/port`,
//! plus `__ip/port` for an endpoint) prefixed by 8 base32 characters of its SHA-256 so that
//! names stay unique when cut and are told apart at a glance.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::model::{Endpoint, ServicePortName};

/// nftables' chain name limit (NFT_NAME_MAXLEN - 1) minus the longest prefix we put before.
const BASE_MAX: usize = 255 - 16;

pub fn base32_hash(text: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(text.as_bytes());
    // 8 characters × 5 bits = the first 40 bits (5 bytes).
    let mut bits: u64 = 0;
    for b in &digest[..5] {
        bits = (bits << 8) | u64::from(*b);
    }
    (0..8)
        .map(|i| ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char)
        .collect()
}

fn hash_and_truncate(name: String) -> String {
    let mut out = format!("{}-{name}", base32_hash(&name));
    if out.len() > BASE_MAX {
        out.truncate(BASE_MAX - 3);
        out.push_str("...");
    }
    out
}

/// Remembers the names of the last two syncs: with 10,000 endpoints, hashing every name on
/// every sync would be most of a sync's work.
#[derive(Debug, Default)]
pub struct Namer {
    current: HashMap<String, String>,
    previous: HashMap<String, String>,
}

impl Namer {
    fn memo(&mut self, input: String, make: impl FnOnce(&str) -> String) -> String {
        if let Some(name) = self.current.get(&input) {
            return name.clone();
        }
        let name = match self.previous.remove(&input) {
            Some(name) => name,
            None => make(&input),
        };
        self.current.insert(input, name.clone());
        name
    }

    /// Call after each sync: names unused for a whole sync are forgotten.
    pub fn rotate(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }

    /// `HASH-ns/name/tcp/port`.
    pub fn service_base(&mut self, name: &ServicePortName) -> String {
        let input = format!(
            "{}/{}/{}/{}",
            name.namespace,
            name.name,
            name.protocol.as_str(),
            name.port
        );
        self.memo(input, |i| hash_and_truncate(i.to_owned()))
    }

    /// `HASH-ns/name/tcp/port__10.0.0.5/8080` (an IPv6 address with dots for colons, which
    /// chain names cannot hold).
    pub fn endpoint_base(&mut self, name: &ServicePortName, ep: &Endpoint) -> String {
        let input = format!(
            "{}/{}/{}/{}__{}/{}",
            name.namespace,
            name.name,
            name.protocol.as_str(),
            name.port,
            ep.ip.to_string().replace(':', "."),
            ep.port
        );
        self.memo(input, |i| hash_and_truncate(i.to_owned()))
    }

    pub fn iptables_chain(&mut self, prefix: &str, text: &str) -> String {
        self.memo(format!("{prefix}{text}"), |_| iptables_chain(prefix, text))
    }
}

/// iptables chain names hold at most 28 characters: `<prefix><16 hash characters>`.
pub fn iptables_chain(prefix: &str, text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u128 = 0;
    for b in &hash[..10] {
        bits = (bits << 8) | u128::from(*b);
    }
    let tail: String = (0..16)
        .map(|i| ALPHABET[((bits >> (75 - 5 * i)) & 31) as usize] as char)
        .collect();
    format!("{prefix}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    #[test]
    fn hash_is_rfc4648_base32_of_sha256() {
        // sha256("") = e3b0c442 98…; base32 of e3 b0 c4 42 98 → "4OYMIQUY".
        assert_eq!(base32_hash(""), "4OYMIQUY");
    }

    #[test]
    fn names_are_readable_and_bounded() {
        let name = ServicePortName {
            namespace: "ns1".into(),
            name: "svc1".into(),
            port: "p80".into(),
            protocol: Protocol::Tcp,
        };
        let mut namer = Namer::default();
        let base = namer.service_base(&name);
        assert!(base.ends_with("-ns1/svc1/tcp/p80"), "{base}");
        assert_eq!(base.len(), 8 + 1 + "ns1/svc1/tcp/p80".len());
        let ep = Endpoint {
            ip: "fd00::1".parse().unwrap(),
            port: 80,
            local: false,
        };
        assert!(namer.endpoint_base(&name, &ep).ends_with("__fd00..1/80"));
        namer.rotate();
        assert_eq!(namer.service_base(&name), base, "remembered across a sync");
        let chain = iptables_chain("RKUBE-SVC-", "ns1/svc1:p80");
        assert_eq!(chain.len(), 26);
    }
}
