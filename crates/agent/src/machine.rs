//! What the agent reads from the machine: fixed facts once (CPUs, memory, huge pages, node
//! info), and usage on every status update (available memory, disk and PIDs) for the pressure
//! conditions.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Facts that do not change while the agent runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Online CPUs.
    pub cpus: u32,
    /// MemTotal, bytes.
    pub memory_bytes: u64,
    /// Huge page sizes in KiB and the bytes reserved in each (`hugepages-2Mi` …).
    pub hugepages: Vec<(u64, u64)>,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
    /// `runc://<version>`, or `None` when no runtime binary answers.
    pub container_runtime_version: Option<String>,
    /// GOARCH spelling (`amd64`, `arm64`), as kubelet labels and reports it.
    pub architecture: &'static str,
}

/// Usage that the pressure conditions and ephemeral storage come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// MemAvailable, bytes.
    pub memory_available: u64,
    /// The data dir's filesystem (kubelet's nodefs): size and space available to users.
    pub fs_capacity: u64,
    pub fs_available: u64,
    /// kernel.pid_max and the threads that exist.
    pub pid_max: u64,
    pub pids: u64,
    /// The pod network is up (kubelet's NetworkReady from the runtime's status).
    pub network_ready: bool,
}

impl Machine {
    pub fn probe() -> Machine {
        let machine_id = read_trimmed("/etc/machine-id").unwrap_or_default();
        let system_uuid = read_trimmed("/sys/class/dmi/id/product_uuid")
            .or_else(|| clientkit::kubelet::uuid_from_hex(&machine_id))
            .unwrap_or_default();
        Machine {
            cpus: online_cpus(),
            memory_bytes: meminfo("MemTotal").unwrap_or(0),
            hugepages: hugepages(),
            machine_id,
            system_uuid,
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
            os_image: os_image(&std::fs::read_to_string("/etc/os-release").unwrap_or_default()),
            container_runtime_version: runc_version("runc"),
            architecture: go_arch(),
        }
    }
}

impl Usage {
    /// Current usage, the filesystem being the one holding `data_dir`.
    pub fn read(data_dir: &Path, network_ready: bool) -> anyhow::Result<Usage> {
        let fs =
            nix::sys::statvfs::statvfs(data_dir).with_context(|| format!("statfs {}", data_dir.display()))?;
        let block = fs.fragment_size();
        let (pids, pid_max) = pids();
        Ok(Usage {
            memory_available: meminfo("MemAvailable").unwrap_or(0),
            fs_capacity: fs.blocks() * block,
            fs_available: fs.blocks_available() * block,
            pid_max,
            pids,
            network_ready,
        })
    }
}

/// The machine's host name, lower case (the default node name, as kubelet's).
pub fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .map(|h| h.to_ascii_lowercase())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The local address the kernel would send from towards `target` (the default-route
/// interface's address for an outside address; no packet is sent), else 127.0.0.1.
pub fn source_address_towards(target: IpAddr) -> IpAddr {
    let bind: IpAddr = match target {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let probe = UdpSocket::bind((bind, 0)).and_then(|s| {
        s.connect((target, 9))?;
        s.local_addr()
    });
    match probe {
        Ok(local) if !local.ip().is_unspecified() => local.ip(),
        _ => Ipv4Addr::LOCALHOST.into(),
    }
}

/// The default-route interface's address (a documentation address as target), else 127.0.0.1.
pub fn default_node_ip() -> IpAddr {
    source_address_towards(Ipv4Addr::new(192, 0, 2, 1).into())
}

/// The agent's own directory under the data dir.
pub fn agent_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("agent")
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// CPUs in `/sys/devices/system/cpu/online` (`0-3,6`), else what the scheduler lets us use.
fn online_cpus() -> u32 {
    read_trimmed("/sys/devices/system/cpu/online")
        .and_then(|list| count_cpu_list(&list))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
}

fn count_cpu_list(list: &str) -> Option<u32> {
    let mut count = 0;
    for part in list.split(',') {
        count += match part.split_once('-') {
            Some((a, b)) => b.trim().parse::<u32>().ok()? - a.trim().parse::<u32>().ok()? + 1,
            None => {
                part.trim().parse::<u32>().ok()?;
                1
            }
        };
    }
    Some(count)
}

/// A `/proc/meminfo` field in bytes.
fn meminfo(field: &str) -> Option<u64> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?, field)
}

fn parse_meminfo(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// Each huge page size (KiB) with the bytes reserved in it, smallest first.
fn hugepages() -> Vec<(u64, u64)> {
    let Ok(entries) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut sizes: Vec<(u64, u64)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let kib: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let pages: u64 = std::fs::read_to_string(e.path().join("nr_hugepages"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((kib, pages * kib * 1024))
        })
        .collect();
    sizes.sort();
    sizes
}

/// Threads that exist (`/proc/loadavg`'s `running/total`) and kernel.pid_max, as kubelet's
/// pid.available signal counts them.
fn pids() -> (u64, u64) {
    let total = read_trimmed("/proc/loadavg")
        .and_then(|l| l.split_whitespace().nth(3)?.split_once('/')?.1.parse().ok())
        .unwrap_or(0);
    let max = read_trimmed("/proc/sys/kernel/pid_max")
        .and_then(|m| m.parse().ok())
        .unwrap_or(32768);
    (total, max)
}

/// PRETTY_NAME from os-release (kubelet's osImage), unquoted.
fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_owned())
        .unwrap_or_else(|| "Linux".to_owned())
}

/// `runc://<version>` from `<binary> --version`'s first line (`runc version 1.1.5+ds1`).
fn runc_version(binary: &str) -> Option<String> {
    let out = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next()?.split_whitespace().nth(2)?;
    out.status.success().then(|| format!("runc://{version}"))
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(count_cpu_list("0-3,6"), Some(5));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("x"), None);
        let meminfo = "MemTotal:       16384000 kB\nMemFree: 10 kB\nMemAvailable:    8000 kB\n";
        assert_eq!(parse_meminfo(meminfo, "MemTotal"), Some(16384000 * 1024));
        assert_eq!(parse_meminfo(meminfo, "MemAvailable"), Some(8000 * 1024));
        assert_eq!(parse_meminfo(meminfo, "Mem"), None);
        assert_eq!(
            os_image("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
    }

    #[test]
    fn reads_this_machine() {
        let machine = Machine::probe();
        assert!(machine.cpus >= 1);
        assert!(machine.memory_bytes > 64 << 20);
        assert!(!machine.kernel_version.is_empty());
        let usage = Usage::read(Path::new("/"), true).unwrap();
        assert!(usage.fs_capacity >= usage.fs_available && usage.fs_capacity > 0);
        assert!(usage.memory_available > 0 && usage.memory_available <= machine.memory_bytes);
        assert!(usage.pids > 0 && usage.pid_max > usage.pids);
        assert!(default_node_ip().is_ipv4());
    }
}
