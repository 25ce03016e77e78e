use super::*;
use crate::index::fixtures::{service, slice};

fn settings() -> Settings {
    Settings {
        domain: "cluster.local".into(),
        ttl: 5,
        local_ips: vec!["10.42.0.1".parse().unwrap()],
    }
}

/// The cluster the tests ask about:
/// - `default/kubernetes` ClusterIP 10.43.0.1, port `https` 443;
/// - `default/web` dual-stack 10.43.0.20 / fd00:43::20, ports `http` 80 and `metrics` 9090/UDP;
/// - `default/db` headless, endpoints `db-0` (10.42.1.5, hostname), 10.42.2.6 (no hostname),
///   10.42.3.7 not ready; port `pg` 5432;
/// - `default/ext` ExternalName `example.org`; `default/alias` ExternalName to `web`;
/// - `default/noports` headless, one endpoint, a slice without ports;
/// - namespace `empty` exists and holds nothing.
fn index() -> Index {
    let mut index = Index::default();
    for ns in ["default", "empty", "kube-system"] {
        index.apply_namespace(&k8s_openapi::api::core::v1::Namespace {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        });
    }
    index.apply_service(&service(
        "default",
        "kubernetes",
        &["10.43.0.1"],
        &[("https", 443)],
    ));
    let mut web = service(
        "default",
        "web",
        &["10.43.0.20", "fd00:43::20"],
        &[("http", 80), ("metrics", 9090)],
    );
    web.spec.as_mut().unwrap().ports.as_mut().unwrap()[1].protocol = Some("UDP".into());
    index.apply_service(&web);
    index.apply_slice(&slice(
        "default",
        "web-1",
        "web",
        &[("10.42.1.9", None, Some(true))],
        &[("http", 8080)],
    ));
    index.apply_service(&service("default", "db", &["None"], &[("pg", 5432)]));
    index.apply_slice(&slice(
        "default",
        "db-abc",
        "db",
        &[
            ("10.42.1.5", Some("db-0"), Some(true)),
            ("10.42.2.6", None, None),
            ("10.42.3.7", Some("db-2"), Some(false)),
        ],
        &[("pg", 5432)],
    ));
    for (name, target) in [("ext", "example.org"), ("alias", "web.default.svc.cluster.local")] {
        let mut ext = service("default", name, &[], &[]);
        let spec = ext.spec.as_mut().unwrap();
        spec.type_ = Some("ExternalName".into());
        spec.external_name = Some(target.into());
        spec.cluster_ip = None;
        spec.cluster_ips = None;
        index.apply_service(&ext);
    }
    index.apply_service(&service("default", "noports", &["None"], &[]));
    index.apply_slice(&slice(
        "default",
        "noports-1",
        "noports",
        &[("10.42.4.4", None, None)],
        &[],
    ));
    index
}

fn ask(name: &str, qtype: RecordType) -> Outcome {
    resolve(&index(), &settings(), &Name::from_ascii(name).unwrap(), qtype)
}

fn reply(name: &str, qtype: RecordType) -> Reply {
    match ask(name, qtype) {
        Outcome::Answer(reply) => reply,
        other => panic!("{name} {qtype}: expected an answer, got {other:?}"),
    }
}

/// The answer section as `owner type data` lines.
fn lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

fn assert_nodata(name: &str, qtype: RecordType) {
    let r = reply(name, qtype);
    assert_eq!(r.rcode, ResponseCode::NoError, "{name} {qtype}");
    assert!(r.answers.is_empty(), "{name} {qtype}: {:?}", lines(&r.answers));
    assert_eq!(r.authority.len(), 1, "{name} {qtype}: SOA in authority");
    assert_eq!(r.authority[0].record_type(), RecordType::SOA);
}

fn assert_nxdomain(name: &str, qtype: RecordType) {
    let r = reply(name, qtype);
    assert_eq!(r.rcode, ResponseCode::NXDomain, "{name} {qtype}");
    assert!(r.answers.is_empty());
    assert_eq!(lines(&r.authority).len(), 1);
    assert!(r.authoritative);
}

#[test]
fn cluster_ip_service_a_and_aaaa_by_family() {
    let r = reply("kubernetes.default.svc.cluster.local.", RecordType::A);
    assert_eq!(r.rcode, ResponseCode::NoError);
    assert!(r.authoritative);
    assert_eq!(
        lines(&r.answers),
        ["kubernetes.default.svc.cluster.local. A 10.43.0.1"]
    );
    assert_eq!(r.answers[0].ttl, 5);
    let r = reply("web.default.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(
        lines(&r.answers),
        ["web.default.svc.cluster.local. AAAA fd00:43::20"]
    );
    // Two ports, one address: one A record.
    let r = reply("web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(lines(&r.answers), ["web.default.svc.cluster.local. A 10.43.0.20"]);
    assert_nodata("kubernetes.default.svc.cluster.local.", RecordType::AAAA);
}

#[test]
fn names_are_case_insensitive_and_answers_keep_the_asked_case() {
    let r = reply("Kubernetes.DEFAULT.svc.Cluster.Local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        ["Kubernetes.DEFAULT.svc.Cluster.Local. A 10.43.0.1"]
    );
    let r = reply("nothing.default.svc.Cluster.Local.", RecordType::A);
    assert_eq!(r.authority[0].name.to_string(), "Cluster.Local.");
}

#[test]
fn nxdomain_and_nodata_as_coredns() {
    assert_nxdomain("missing.default.svc.cluster.local.", RecordType::A);
    assert_nxdomain("kubernetes.nons.svc.cluster.local.", RecordType::A);
    assert_nxdomain("nons.svc.cluster.local.", RecordType::A);
    assert_nxdomain("foo.cluster.local.", RecordType::A);
    assert_nxdomain("a.b.c.d.default.svc.cluster.local.", RecordType::A);
    // Search-path expansions of an already complete name (ndots:5).
    assert_nxdomain(
        "kubernetes.default.svc.cluster.local.cluster.local.",
        RecordType::A,
    );
    assert_nxdomain(
        "kubernetes.default.svc.cluster.local.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_nxdomain("kubernetes.default.default.svc.cluster.local.", RecordType::A);
    // Names that exist without records of the type.
    assert_nodata("cluster.local.", RecordType::A);
    assert_nodata("svc.cluster.local.", RecordType::A);
    assert_nodata("pod.cluster.local.", RecordType::A);
    assert_nodata("empty.svc.cluster.local.", RecordType::A);
    assert_nodata("default.pod.cluster.local.", RecordType::A);
    assert_nodata("kubernetes.default.svc.cluster.local.", RecordType::MX);
    assert_nodata("kubernetes.default.svc.cluster.local.", RecordType::HTTPS);
    assert_nxdomain("missing.default.svc.cluster.local.", RecordType::HTTPS);
    // TXT: NXDOMAIN unless the name has records (CoreDNS's quirk).
    assert_nodata("kubernetes.default.svc.cluster.local.", RecordType::TXT);
    assert_nxdomain("empty.svc.cluster.local.", RecordType::TXT);
}

#[test]
fn soa_and_negative_answers_carry_the_zone_soa() {
    let r = reply("cluster.local.", RecordType::SOA);
    assert_eq!(r.answers.len(), 1);
    let RData::SOA(soa) = &r.answers[0].data else {
        panic!("not a SOA: {:?}", r.answers)
    };
    assert_eq!(soa.mname.to_string(), "ns.dns.cluster.local.");
    assert_eq!(soa.rname.to_string(), "hostmaster.cluster.local.");
    assert_eq!(
        (soa.refresh, soa.retry, soa.expire, soa.minimum),
        (7200, 1800, 86400, 5)
    );
    // The serial is the time of the index's last change.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    assert!(soa.serial <= now + 60 && soa.serial + 60 >= now, "{}", soa.serial);
    // Below the apex a SOA query is NODATA, even for a name that does not exist.
    assert_nodata("missing.default.svc.cluster.local.", RecordType::SOA);
}

#[test]
fn ns_at_the_apex_names_this_server() {
    let r = reply("cluster.local.", RecordType::NS);
    assert_eq!(lines(&r.answers), ["cluster.local. NS ns.dns.cluster.local."]);
    assert_eq!(lines(&r.additionals), ["ns.dns.cluster.local. A 10.42.0.1"]);
    let r = reply("ns.dns.cluster.local.", RecordType::A);
    assert_eq!(lines(&r.answers), ["ns.dns.cluster.local. A 10.42.0.1"]);
    assert_nodata("default.svc.cluster.local.", RecordType::NS);

    // When this server's address is an endpoint of kube-dns, the NS is the Service.
    let mut index = index();
    index.apply_service(&service(
        "kube-system",
        "kube-dns",
        &["10.43.0.10"],
        &[("dns", 53)],
    ));
    index.apply_slice(&slice(
        "kube-system",
        "kube-dns-1",
        "kube-dns",
        &[("10.42.0.1", None, None)],
        &[("dns", 53)],
    ));
    let Outcome::Answer(r) = resolve(
        &index,
        &settings(),
        &Name::from_ascii("cluster.local.").unwrap(),
        RecordType::NS,
    ) else {
        panic!()
    };
    assert_eq!(
        lines(&r.answers),
        ["cluster.local. NS kube-dns.kube-system.svc.cluster.local."]
    );
    assert_eq!(
        lines(&r.additionals),
        ["kube-dns.kube-system.svc.cluster.local. A 10.43.0.10"]
    );
}

#[test]
fn headless_services_answer_ready_endpoints() {
    let r = reply("db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        [
            "db.default.svc.cluster.local. A 10.42.1.5",
            "db.default.svc.cluster.local. A 10.42.2.6",
        ]
    );
    let r = reply("db-0.db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        ["db-0.db.default.svc.cluster.local. A 10.42.1.5"]
    );
    let r = reply("10-42-2-6.db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        ["10-42-2-6.db.default.svc.cluster.local. A 10.42.2.6"]
    );
    // Not ready: gone from every answer.
    assert_nxdomain("db-2.db.default.svc.cluster.local.", RecordType::A);
    // A slice without ports still gives addresses.
    let r = reply("noports.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        ["noports.default.svc.cluster.local. A 10.42.4.4"]
    );
    // An endpoint name under a ClusterIP Service answers the endpoint, as CoreDNS.
    let r = reply("10-42-1-9.web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        ["10-42-1-9.web.default.svc.cluster.local. A 10.42.1.9"]
    );
}

#[test]
fn srv_for_named_ports() {
    let r = reply(
        "_https._tcp.kubernetes.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        lines(&r.answers),
        [
            "_https._tcp.kubernetes.default.svc.cluster.local. SRV 0 100 443 kubernetes.default.svc.cluster.local."
        ]
    );
    assert_eq!(
        lines(&r.additionals),
        ["kubernetes.default.svc.cluster.local. A 10.43.0.1"]
    );
    assert_nxdomain("_http._udp.web.default.svc.cluster.local.", RecordType::SRV);
    assert_nxdomain(
        "_nope._tcp.kubernetes.default.svc.cluster.local.",
        RecordType::SRV,
    );
    // The protocol is matched case-insensitively.
    let r = reply("_metrics._UDP.web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(r.answers.len(), 1);

    // The plain name: every port; dual-stack gives one address per family.
    let r = reply("web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        lines(&r.answers),
        [
            "web.default.svc.cluster.local. SRV 0 25 80 web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. SRV 0 25 9090 web.default.svc.cluster.local.",
        ]
    );
    assert_eq!(
        lines(&r.additionals),
        [
            "web.default.svc.cluster.local. A 10.43.0.20",
            "web.default.svc.cluster.local. AAAA fd00:43::20",
        ]
    );

    // Headless: one per endpoint, targeting its host name.
    let r = reply("_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        lines(&r.answers),
        [
            "_pg._tcp.db.default.svc.cluster.local. SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
            "_pg._tcp.db.default.svc.cluster.local. SRV 0 50 5432 10-42-2-6.db.default.svc.cluster.local.",
        ]
    );
    assert_eq!(
        lines(&r.additionals),
        [
            "db-0.db.default.svc.cluster.local. A 10.42.1.5",
            "10-42-2-6.db.default.svc.cluster.local. A 10.42.2.6",
        ]
    );
    // No ports, no SRV records (but the name exists).
    assert_nodata("noports.default.svc.cluster.local.", RecordType::SRV);
}

#[test]
fn external_names_are_cnames() {
    let r = reply("ext.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        ["ext.default.svc.cluster.local. CNAME example.org."]
    );
    assert_eq!(r.chase, Some(Name::from_ascii("example.org.").unwrap()));
    let r = reply("ext.default.svc.cluster.local.", RecordType::CNAME);
    assert_eq!(
        lines(&r.answers),
        ["ext.default.svc.cluster.local. CNAME example.org."]
    );
    assert_eq!(r.chase, None);
    // A target inside the zone is followed here.
    let r = reply("alias.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        [
            "alias.default.svc.cluster.local. CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. A 10.43.0.20",
        ]
    );
    assert_eq!(r.chase, None);
    assert_nodata("ext.default.svc.cluster.local.", RecordType::SRV);
    assert_nxdomain("_http._tcp.ext.default.svc.cluster.local.", RecordType::SRV);
    // CNAME of a non-ExternalName: NODATA.
    assert_nodata("kubernetes.default.svc.cluster.local.", RecordType::CNAME);
}

#[test]
fn pod_names_carry_their_address() {
    let r = reply("10-42-1-5.default.pod.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&r.answers),
        ["10-42-1-5.default.pod.cluster.local. A 10.42.1.5"]
    );
    let r = reply("fd00-42--5.default.pod.cluster.local.", RecordType::AAAA);
    assert_eq!(
        lines(&r.answers),
        ["fd00-42--5.default.pod.cluster.local. AAAA fd00:42::5"]
    );
    assert_nodata("10-42-1-5.default.pod.cluster.local.", RecordType::AAAA);
    assert_nxdomain("not-an-ip.default.pod.cluster.local.", RecordType::A);
    assert_nxdomain("10-42-1-5.nons.pod.cluster.local.", RecordType::A);
}

#[test]
fn reverse_lookups() {
    let r = reply("1.0.43.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&r.answers),
        ["1.0.43.10.in-addr.arpa. PTR kubernetes.default.svc.cluster.local."]
    );
    let r = reply(
        "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa.",
        RecordType::PTR,
    );
    assert_eq!(lines(&r.answers).len(), 1);
    assert!(lines(&r.answers)[0].ends_with("PTR web.default.svc.cluster.local."));
    let r = reply("5.1.42.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&r.answers),
        ["5.1.42.10.in-addr.arpa. PTR db-0.db.default.svc.cluster.local."]
    );
    let r = reply("6.2.42.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&r.answers),
        ["6.2.42.10.in-addr.arpa. PTR 10-42-2-6.db.default.svc.cluster.local."]
    );
    // Unknown and partial reverse names fall through (forwarded, else NXDOMAIN).
    for name in [
        "9.9.9.10.in-addr.arpa.",
        "43.10.in-addr.arpa.",
        "7.3.42.10.in-addr.arpa.",
    ] {
        let Outcome::FallThrough(r) = ask(name, RecordType::PTR) else {
            panic!("{name}: expected a fall-through");
        };
        assert_eq!(r.rcode, ResponseCode::NXDomain);
        assert_eq!(r.authority[0].name.to_string(), "in-addr.arpa.");
    }
    // PTR of a forward name: NODATA when it exists.
    assert_nodata("kubernetes.default.svc.cluster.local.", RecordType::PTR);
}

#[test]
fn special_names_and_types() {
    let r = reply("dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(lines(&r.answers), ["dns-version.cluster.local. TXT 1.1.0"]);
    assert_eq!(r.answers[0].ttl, 28800);
    let r = reply("cluster.local.", RecordType::AXFR);
    assert_eq!(r.rcode, ResponseCode::Refused);
    assert!(!r.authoritative);
    assert_eq!(ask("example.org.", RecordType::A), Outcome::Outside);
    assert_eq!(ask("local.", RecordType::A), Outcome::Outside);
    assert_eq!(ask("notcluster.local.", RecordType::A), Outcome::Outside);
}

#[test]
fn reverse_names_parse_only_when_complete() {
    assert_eq!(
        address_from_reverse("4.3.2.1.in-addr.arpa"),
        Some("1.2.3.4".parse().unwrap())
    );
    assert_eq!(address_from_reverse("3.2.1.in-addr.arpa"), None);
    assert_eq!(address_from_reverse("256.3.2.1.in-addr.arpa"), None);
    assert_eq!(
        address_from_reverse("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa"),
        Some("fd00::1".parse().unwrap())
    );
    assert_eq!(address_from_reverse("1.0.d.f.ip6.arpa"), None);
}
