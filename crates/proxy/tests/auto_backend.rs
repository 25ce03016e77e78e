//! `Backend::Auto`: nftables where `nft` works, the iptables fallback where it is missing
//! (here: the test binary run again with a PATH without `nft`).

use std::path::Path;

use proxy::testing::{ready, service, slice};
use proxy::{Backend, Config, Proxier};
use serde_json::json;
use testkit::netns::NetNs;

fn which(program: &str) -> std::path::PathBuf {
    std::env::var("PATH")
        .unwrap()
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{program} is installed"))
}

/// Set in the child run.
const CHILD: &str = "RKUBE_PROXY_TEST_WITHOUT_NFT";

#[test]
fn auto_prefers_nftables_and_falls_back_to_iptables_without_nft() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auto = || {
        let mut c = Config::new("node-a");
        c.backend = Backend::Auto;
        c
    };
    if std::env::var_os(CHILD).is_none() {
        assert_eq!(rt.block_on(Proxier::new(auto())).backend(), Backend::Nftables);
    }

    if std::env::var_os(CHILD).is_none() {
        // Again, in a child process whose PATH holds the iptables tools but no nft.
        let bin = tempfile::tempdir().unwrap();
        for tool in [
            "iptables",
            "ip6tables",
            "iptables-restore",
            "ip6tables-restore",
            "iptables-save",
            "ip6tables-save",
            "conntrack",
            "ip",
            "nsenter",
        ] {
            std::os::unix::fs::symlink(which(tool), bin.path().join(tool)).unwrap();
        }
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "auto_prefers_nftables_and_falls_back_to_iptables_without_nft",
                "--nocapture",
            ])
            .env("PATH", bin.path())
            .env(CHILD, "1")
            .status()
            .unwrap();
        assert!(status.success(), "the run without nft failed");
        return;
    }
    let mut p = rt.block_on(Proxier::new(auto()));
    assert_eq!(p.backend(), Backend::Iptables);

    let ns = NetNs::create("pxa").unwrap();
    let svc = service("web", "10.96.0.10", json!({}));
    let s = slice(
        "web",
        "web-1",
        ("http", 8080, "TCP"),
        &[ready("10.42.0.5", "node-a")],
    );
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter().unwrap();
                rt.block_on(p.sync(&[svc], &[s])).unwrap();
            })
            .join()
            .unwrap()
    });
    let out = std::process::Command::new(which("nsenter"))
        .arg(format!("--net={}", ns.path().display()))
        .args([which("iptables-save").to_str().unwrap(), "-t", "nat"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&out.stdout);
    assert!(rules.contains("-A PREROUTING -j RKUBE-SERVICES"), "{rules}");
    assert!(rules.contains("--to-destination 10.42.0.5:8080"), "{rules}");
}
