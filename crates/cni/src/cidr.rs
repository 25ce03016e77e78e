//! IP prefixes in CIDR notation (`10.42.0.5/24`), as CNI results and pod CIDRs write them.
//!
//! Kept here rather than pulling a crate in: CNI only needs parsing, printing, the network
//! address and "the n-th address of the range" (the gateway is `.1`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address with a prefix length; the address need not be the network address (CNI results
/// carry the interface's own address, `10.42.0.5/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR address: {0}")]
pub struct ParseCidrError(pub String);

impl IpNet {
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Self, ParseCidrError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(ParseCidrError(format!("{addr}/{prefix_len}")));
        }
        Ok(IpNet { addr, prefix_len })
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The prefix with the host bits cleared (`10.42.0.5/24` → `10.42.0.0/24`).
    pub fn network(&self) -> IpNet {
        IpNet {
            addr: self.offset(0),
            prefix_len: self.prefix_len,
        }
    }

    /// The address `n` after the network address (`10.42.0.0/24`, 1 → `10.42.0.1`).
    /// Wraps within the address family; callers keep `n` inside the prefix.
    pub fn offset(&self, n: u128) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0);
                let base = u32::from(a) & mask;
                IpAddr::V4(Ipv4Addr::from(base.wrapping_add(n as u32)))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                let base = u128::from(a) & mask;
                IpAddr::V6(Ipv6Addr::from(base.wrapping_add(n)))
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let same_family = ip.is_ipv4() == self.addr.is_ipv4();
        same_family
            && IpNet {
                addr: ip,
                prefix_len: self.prefix_len,
            }
            .network()
                == self.network()
    }
}

impl FromStr for IpNet {
    type Err = ParseCidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCidrError(s.to_owned());
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        // Digits only: Go's ParseCIDR refuses "+24" and " 24", so do we.
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let len: u8 = len.parse().map_err(|_| err())?;
        IpNet::new(addr, len).map_err(|_| err())
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let n: IpNet = "10.42.0.5/24".parse().unwrap();
        assert_eq!(n.to_string(), "10.42.0.5/24");
        assert_eq!(n.network().to_string(), "10.42.0.0/24");
        assert_eq!(n.offset(1).to_string(), "10.42.0.1");
        let v6: IpNet = "fd00:42::/64".parse().unwrap();
        assert_eq!(v6.offset(1).to_string(), "fd00:42::1");
        assert!(!v6.is_ipv4());
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "10.42.0.0",
            "10.42.0.0/33",
            "10.42.0.0/",
            "10.42.0.0/+8",
            "x/8",
            "::/129",
            "1.2.3.4/ 8",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn zero_prefix_and_containment() {
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all.offset(1).to_string(), "0.0.0.1");
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
        let n: IpNet = "10.42.1.0/24".parse().unwrap();
        assert!(n.contains("10.42.1.200".parse().unwrap()));
        assert!(!n.contains("10.42.2.1".parse().unwrap()));
    }
}
