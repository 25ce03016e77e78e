//! Pod addresses of one node, from its `spec.podCIDR` as a host-local IPAM plugin hands them
//! out: the first address is the node's bridge (the pods' gateway), pods get the following
//! ones, an address is free again once its pod is gone.

use std::collections::HashMap;
use std::net::Ipv4Addr;

pub struct PodIps {
    cidr: String,
    first: u32,
    /// How many pod addresses the range has.
    size: u32,
    /// Where the next search starts (addresses are not reused at once, as host-local).
    cursor: u32,
    /// Pod (namespace/name) → (pod uid, address offset in the range).
    by_pod: HashMap<String, (String, u32)>,
    used: std::collections::HashSet<u32>,
}

impl PodIps {
    /// The pod range of an IPv4 CIDR such as `10.42.3.0/24` (None if it is not one).
    pub fn new(cidr: &str) -> Option<PodIps> {
        let (ip, bits) = cidr.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let bits: u32 = bits.parse().ok().filter(|b| *b <= 30)?;
        let network = u32::from(ip) & (u32::MAX.checked_shl(32 - bits).unwrap_or(0));
        // Network address, gateway and broadcast are not pod addresses.
        let size = (1u32 << (32 - bits)) - 3;
        Some(PodIps {
            cidr: cidr.to_owned(),
            first: network + 2,
            size,
            cursor: 0,
            by_pod: HashMap::new(),
            used: Default::default(),
        })
    }

    pub fn cidr(&self) -> &str {
        &self.cidr
    }

    /// The address of pod `key` (uid `uid`): the one it has, else `reported` (an address the
    /// pod already shows, kept across restarts of the simulation) if free and in range, else
    /// the next free one. None when the range is full.
    pub fn assign(&mut self, key: &str, uid: &str, reported: Option<&str>) -> Option<Ipv4Addr> {
        if let Some((owner, offset)) = self.by_pod.get(key) {
            if owner == uid {
                return Some(Ipv4Addr::from(self.first + offset));
            }
            self.release(key);
        }
        let wanted = reported
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            .map(|ip| u32::from(ip).wrapping_sub(self.first))
            .filter(|offset| *offset < self.size && !self.used.contains(offset));
        let offset = match wanted {
            Some(offset) => offset,
            None => {
                let offset = (0..self.size)
                    .map(|i| (self.cursor + i) % self.size)
                    .find(|o| !self.used.contains(o))?;
                self.cursor = (offset + 1) % self.size;
                offset
            }
        };
        self.used.insert(offset);
        self.by_pod.insert(key.to_owned(), (uid.to_owned(), offset));
        Some(Ipv4Addr::from(self.first + offset))
    }

    pub fn release(&mut self, key: &str) {
        if let Some((_, offset)) = self.by_pod.remove(key) {
            self.used.remove(&offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PodIps;

    #[test]
    fn assigns_from_the_range_and_reuses_freed_addresses() {
        let mut ips = PodIps::new("10.42.3.0/30").unwrap();
        assert_eq!(ips.assign("a", "1", None).unwrap().to_string(), "10.42.3.2");
        assert_eq!(ips.assign("a", "1", None).unwrap().to_string(), "10.42.3.2");
        assert_eq!(ips.assign("b", "2", None), None, "a /30 has one pod address");
        ips.release("a");
        assert_eq!(ips.assign("b", "2", None).unwrap().to_string(), "10.42.3.2");
        let mut ips = PodIps::new("10.42.4.0/24").unwrap();
        assert_eq!(
            ips.assign("c", "3", Some("10.42.4.77")).unwrap().to_string(),
            "10.42.4.77"
        );
        assert_eq!(
            ips.assign("d", "4", Some("10.9.9.9")).unwrap().to_string(),
            "10.42.4.2"
        );
        assert!(PodIps::new("fd00::/64").is_none());
    }
}
