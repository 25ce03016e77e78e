//! kubelet's hard eviction thresholds (`--eviction-hard`), which both shrink allocatable and
//! raise the pressure conditions: `memory.available<100Mi,nodefs.available<10%` by default.

use std::fmt;

/// One threshold: an absolute amount or a share of the capacity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    Bytes(u64),
    Percent(f64),
}

impl Threshold {
    /// How much of `capacity` the threshold keeps back.
    pub fn reserved(self, capacity: u64) -> u64 {
        match self {
            Threshold::Bytes(b) => b.min(capacity),
            Threshold::Percent(p) => (capacity as f64 * p / 100.0) as u64,
        }
    }

    /// Whether `available` is below the threshold (pressure).
    pub fn crossed(self, available: u64, capacity: u64) -> bool {
        available < self.reserved(capacity)
    }

    fn parse(text: &str) -> Result<Threshold, String> {
        if let Some(p) = text.strip_suffix('%') {
            let p: f64 = p.parse().map_err(|_| format!("invalid percentage {text:?}"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("invalid percentage {text:?}"));
            }
            return Ok(Threshold::Percent(p));
        }
        apimachinery::quantity::parse(text)
            .filter(|v| *v >= 0.0)
            .map(|v| Threshold::Bytes(v as u64))
            .ok_or_else(|| format!("invalid quantity {text:?}"))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EvictionHard {
    pub memory_available: Threshold,
    pub nodefs_available: Threshold,
}

impl Default for EvictionHard {
    fn default() -> EvictionHard {
        EvictionHard {
            memory_available: Threshold::Bytes(100 << 20),
            nodefs_available: Threshold::Percent(10.0),
        }
    }
}

impl EvictionHard {
    /// kubelet's syntax: `signal<value` pairs separated by commas; signals left out keep
    /// their defaults. Signals this node does not measure (imagefs, inodes) are accepted
    /// and ignored.
    pub fn parse(text: &str) -> Result<EvictionHard, String> {
        let mut out = EvictionHard::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (signal, value) = pair
                .split_once('<')
                .ok_or_else(|| format!("invalid eviction threshold {pair:?}: expected signal<value"))?;
            let threshold = Threshold::parse(value.trim())?;
            match signal.trim() {
                "memory.available" => out.memory_available = threshold,
                "nodefs.available" => out.nodefs_available = threshold,
                "imagefs.available" | "nodefs.inodesFree" | "imagefs.inodesFree" | "pid.available" => {}
                other => return Err(format!("unknown eviction signal {other:?}")),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Bytes(b) => write!(f, "{b}"),
            Threshold::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_as_kubelet_writes_them() {
        let e = EvictionHard::parse("memory.available<200Mi, nodefs.available<1%").unwrap();
        assert_eq!(e.memory_available, Threshold::Bytes(200 << 20));
        assert_eq!(e.nodefs_available, Threshold::Percent(1.0));
        assert!(e.nodefs_available.crossed(0, 100));
        assert!(!e.nodefs_available.crossed(2, 100));
        assert!(EvictionHard::parse("disk<1").is_err());
        assert!(EvictionHard::parse("nodefs.available<200%").is_err());
        assert_eq!(EvictionHard::parse("").unwrap(), EvictionHard::default());
    }
}
