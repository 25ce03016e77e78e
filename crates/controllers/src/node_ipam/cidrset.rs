//! One cluster CIDR cut into equal node ranges (upstream's `cidrset`): ranges are handed out
//! round-robin from where the last one was taken, occupied ones are skipped.

use std::collections::HashSet;
use std::net::IpAddr;

pub struct CidrSet {
    base: u128,
    v6: bool,
    node_bits: u8,
    /// How many node ranges the cluster CIDR holds (capped: a bigger set is never exhausted).
    count: u64,
    used: HashSet<u64>,
    next: u64,
}

/// `addr/bits` as (address as a number, bits, IPv6?).
pub fn parse_cidr(cidr: &str) -> Option<(u128, u8, bool)> {
    let (ip, bits) = cidr.trim().split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    match ip {
        IpAddr::V4(v4) if bits <= 32 => Some((u32::from(v4) as u128, bits, false)),
        IpAddr::V6(v6) if bits <= 128 => Some((u128::from(v6), bits, true)),
        _ => None,
    }
}

impl CidrSet {
    /// The node ranges of `cluster` (a CIDR) with prefix length `node_bits`.
    pub fn new(cluster: &str, node_bits: u8) -> Result<CidrSet, String> {
        let (addr, bits, v6) = parse_cidr(cluster).ok_or_else(|| format!("invalid CIDR {cluster:?}"))?;
        let width: u8 = if v6 { 128 } else { 32 };
        if node_bits < bits || node_bits > width {
            return Err(format!(
                "node CIDR mask size {node_bits} does not fit in cluster CIDR {cluster}"
            ));
        }
        let host_bits = u32::from(width - bits);
        let base = addr & !mask(host_bits);
        let spare = u32::from(node_bits - bits).min(40);
        Ok(CidrSet {
            base,
            v6,
            node_bits,
            count: 1u64 << spare,
            used: HashSet::new(),
            next: 0,
        })
    }

    fn width(&self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }

    fn format(&self, index: u64) -> String {
        let shift = u32::from(self.width() - self.node_bits);
        let addr = self.base + (u128::from(index) << shift);
        let ip: IpAddr = if self.v6 {
            IpAddr::V6(addr.into())
        } else {
            IpAddr::V4((addr as u32).into())
        };
        format!("{ip}/{}", self.node_bits)
    }

    /// The index of `cidr` in this set, if it is one of its node ranges.
    fn index_of(&self, cidr: &str) -> Option<u64> {
        let (addr, bits, v6) = parse_cidr(cidr)?;
        if v6 != self.v6 || bits != self.node_bits || addr < self.base {
            return None;
        }
        let index = (addr - self.base) >> u32::from(self.width() - self.node_bits);
        let index = u64::try_from(index).ok().filter(|i| *i < self.count)?;
        (self.format(index) == format!("{}/{bits}", ip_string(addr, v6))).then_some(index)
    }

    /// Whether `cidr` belongs to this set's address family.
    pub fn same_family(&self, cidr: &str) -> bool {
        parse_cidr(cidr).is_some_and(|(_, _, v6)| v6 == self.v6)
    }

    /// Marks `cidr` taken (a node already has it). False if it is not one of ours.
    pub fn occupy(&mut self, cidr: &str) -> bool {
        match self.index_of(cidr) {
            Some(index) => {
                self.used.insert(index);
                true
            }
            None => false,
        }
    }

    /// Forgets every allocation (before occupying afresh from a relist).
    pub fn clear(&mut self) {
        self.used.clear();
    }

    pub fn release(&mut self, cidr: &str) {
        if let Some(index) = self.index_of(cidr) {
            self.used.remove(&index);
        }
    }

    /// The next free node range, or None when all are taken.
    pub fn allocate(&mut self) -> Option<String> {
        if self.used.len() as u64 >= self.count {
            return None;
        }
        let index = (0..self.count)
            .map(|i| (self.next + i) % self.count)
            .find(|i| !self.used.contains(i))?;
        self.used.insert(index);
        self.next = (index + 1) % self.count;
        Some(self.format(index))
    }
}

fn mask(host_bits: u32) -> u128 {
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

fn ip_string(addr: u128, v6: bool) -> String {
    if v6 {
        std::net::Ipv6Addr::from(addr).to_string()
    } else {
        std::net::Ipv4Addr::from(addr as u32).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::CidrSet;

    #[test]
    fn allocates_round_robin_and_skips_occupied() {
        let mut set = CidrSet::new("10.42.0.0/22", 24).unwrap();
        assert!(set.occupy("10.42.1.0/24"));
        assert!(!set.occupy("10.9.0.0/24"));
        assert_eq!(set.allocate().unwrap(), "10.42.0.0/24");
        assert_eq!(set.allocate().unwrap(), "10.42.2.0/24");
        assert_eq!(set.allocate().unwrap(), "10.42.3.0/24");
        assert_eq!(set.allocate(), None);
        set.release("10.42.2.0/24");
        assert_eq!(set.allocate().unwrap(), "10.42.2.0/24");
        let mut v6 = CidrSet::new("fd00:10::/56", 64).unwrap();
        assert_eq!(v6.allocate().unwrap(), "fd00:10::/64");
        assert_eq!(v6.allocate().unwrap(), "fd00:10:0:1::/64");
        assert!(CidrSet::new("10.42.0.0/16", 8).is_err());
    }
}
