//! The DNS server against a real API server (in process, SQLite), queried with `dig`
//! (Debian's bind9-dnsutils) over UDP and TCP on 127.0.0.1.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// An API server and a DNS server answering from it.
struct Cluster {
    _api: apiserver::Running,
    _dir: tempfile::TempDir,
    client: Client,
    dns: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.dns {
            task.abort();
        }
    }
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store_sqlite::SqliteStore::open(dir.path().join("state.db")).unwrap());
        let config = apiserver::Config::loopback(dir.path().join("server"));
        let api = apiserver::start(config, store).await.unwrap();
        let kubeconfig = kube::config::Kubeconfig::read_from(&api.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = Client::try_from(config).unwrap();
        Cluster {
            _api: api,
            _dir: dir,
            client,
            dns: Vec::new(),
        }
    }

    /// Starts a DNS server on a free loopback port; returns once it is ready.
    async fn dns(&mut self, domain: &str, upstreams: Vec<SocketAddr>) -> Dig {
        let port = testkit::free_port();
        let config = dns::Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], port))],
            cluster_domain: domain.into(),
            upstreams,
            ttl: dns::DEFAULT_TTL,
        };
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(dns::run(self.client.clone(), config, ready_tx));
        if ready_rx.await.is_err() {
            panic!("the DNS server stopped: {:?}", task.await);
        }
        self.dns.push(task);
        Dig { port }
    }

    async fn namespace(&self, name: &str) {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }

    async fn service(&self, ns: &str, spec: serde_json::Value) -> Service {
        let service: Service = serde_json::from_value(spec).unwrap();
        Api::<Service>::namespaced(self.client.clone(), ns)
            .create(&PostParams::default(), &service)
            .await
            .unwrap()
    }

    /// Creates or replaces (server-side apply) an EndpointSlice of `service`.
    async fn slice(
        &self,
        ns: &str,
        name: &str,
        service: &str,
        endpoints: serde_json::Value,
        ports: serde_json::Value,
    ) {
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": ports,
        });
        Api::<EndpointSlice>::namespaced(self.client.clone(), ns)
            .patch(
                name,
                &PatchParams::apply("dns-test").force(),
                &Patch::Apply(slice),
            )
            .await
            .unwrap();
    }
}

/// `dig` against one server.
#[derive(Clone, Copy)]
struct Dig {
    port: u16,
}

/// A parsed `dig` answer.
#[derive(Debug, Default)]
struct Answer {
    status: String,
    flags: Vec<String>,
    /// `name type data` lines per section.
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
}

impl Dig {
    fn addr(self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn query(self, name: &str, qtype: &str, options: &[&str]) -> Answer {
        let output = Command::new("dig")
            .arg("@127.0.0.1")
            .args(["-p", &self.port.to_string(), "+tries=1", "+time=3"])
            .args(options)
            .args([name, qtype])
            .output()
            .expect("dig runs (install bind9-dnsutils)");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "dig {name} {qtype}: {text}");
        parse(&text)
    }

    fn ask(self, name: &str, qtype: &str) -> Answer {
        self.query(name, qtype, &[])
    }

    /// Polls until `check` holds; fails after a second.
    async fn within_a_second(self, name: &str, qtype: &str, check: impl Fn(&Answer) -> bool) {
        let start = Instant::now();
        loop {
            let answer = self.ask(name, qtype);
            if check(&answer) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{name} {qtype} after {:?}: {answer:?}",
                start.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn parse(text: &str) -> Answer {
    let mut answer = Answer::default();
    let mut section = None;
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            answer.status = rest.split(',').next().unwrap_or_default().to_owned();
        }
        if let Some(rest) = line.strip_prefix(";; flags: ") {
            let flags = rest.split(';').next().unwrap_or_default();
            answer.flags = flags.split_whitespace().map(str::to_owned).collect();
        }
        if line.starts_with(";; ") && line.ends_with(" SECTION:") {
            section = Some(line.to_owned());
            continue;
        }
        if line.trim().is_empty() {
            section = None;
            continue;
        }
        let Some(section) = &section else { continue };
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 || line.starts_with(';') {
            continue;
        }
        let record = format!("{} {} {}", fields[0], fields[3], fields[4..].join(" "));
        match section.as_str() {
            ";; ANSWER SECTION:" => answer.answer.push(record),
            ";; AUTHORITY SECTION:" => answer.authority.push(record),
            ";; ADDITIONAL SECTION:" => answer.additional.push(record),
            _ => {}
        }
    }
    answer
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_endpoints_and_updates() {
    let mut cluster = Cluster::start().await;
    cluster.namespace("shop").await;
    let web = cluster
        .service(
            "shop",
            json!({"metadata": {"name": "web"}, "spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
        )
        .await;
    let web_ip = web.spec.unwrap().cluster_ip.unwrap();
    let dig = cluster.dns("cluster.local", vec![]).await;

    // ClusterIP: A, the bootstrap `kubernetes` Service too; no AAAA on a single-stack cluster.
    let a = dig.ask("web.shop.svc.cluster.local", "A");
    assert_eq!(a.status, "NOERROR");
    assert!(a.flags.contains(&"aa".to_owned()), "{a:?}");
    assert_eq!(a.answer, [format!("web.shop.svc.cluster.local. A {web_ip}")]);
    let a = dig.ask("kubernetes.default.svc.cluster.local", "A");
    assert_eq!(a.answer, ["kubernetes.default.svc.cluster.local. A 10.43.0.1"]);
    let aaaa = dig.ask("web.shop.svc.cluster.local", "AAAA");
    assert_eq!((aaaa.status.as_str(), aaaa.answer.len()), ("NOERROR", 0));
    assert!(
        aaaa.authority[0].starts_with("cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local.")
    );
    // Case does not matter.
    let a = dig.ask("WEB.Shop.SVC.cluster.local", "A");
    assert_eq!(a.answer, [format!("WEB.Shop.SVC.cluster.local. A {web_ip}")]);

    // SRV: named ports, and the plain name.
    let srv = dig.ask("_http._tcp.web.shop.svc.cluster.local", "SRV");
    assert_eq!(
        srv.answer,
        ["_http._tcp.web.shop.svc.cluster.local. SRV 0 100 80 web.shop.svc.cluster.local."]
    );
    assert_eq!(
        srv.additional,
        [format!("web.shop.svc.cluster.local. A {web_ip}")]
    );
    let srv = dig.ask("_dns._udp.web.shop.svc.cluster.local", "SRV");
    assert_eq!(
        srv.answer,
        ["_dns._udp.web.shop.svc.cluster.local. SRV 0 100 53 web.shop.svc.cluster.local."]
    );
    let srv = dig.ask("web.shop.svc.cluster.local", "SRV");
    assert_eq!(
        sorted(srv.answer),
        [
            "web.shop.svc.cluster.local. SRV 0 50 53 web.shop.svc.cluster.local.",
            "web.shop.svc.cluster.local. SRV 0 50 80 web.shop.svc.cluster.local.",
        ]
    );
    assert_eq!(
        dig.ask("_http._udp.web.shop.svc.cluster.local", "SRV").status,
        "NXDOMAIN"
    );

    // PTR of the ClusterIP.
    let octets: Vec<&str> = web_ip.split('.').rev().collect();
    let reverse = format!("{}.in-addr.arpa", octets.join("."));
    let ptr = dig.ask(&reverse, "PTR");
    assert_eq!(
        ptr.answer,
        [format!("{reverse}. PTR web.shop.svc.cluster.local.")]
    );

    // NXDOMAIN vs NODATA.
    assert_eq!(dig.ask("nothing.shop.svc.cluster.local", "A").status, "NXDOMAIN");
    assert_eq!(dig.ask("web.nons.svc.cluster.local", "A").status, "NXDOMAIN");
    let ns = dig.ask("shop.svc.cluster.local", "A");
    assert_eq!(
        (ns.status.as_str(), ns.answer.len(), ns.authority.len()),
        ("NOERROR", 0, 1)
    );

    // A headless Service with a StatefulSet-style endpoint, one without a hostname, one not ready.
    cluster
        .service(
            "shop",
            json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
        )
        .await;
    cluster
        .slice(
            "shop",
            "db-1",
            "db",
            json!([
                {"addresses": ["10.42.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.2.6"], "conditions": {"ready": true}},
                {"addresses": ["10.42.3.7"], "hostname": "db-2", "conditions": {"ready": false}},
            ]),
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        )
        .await;
    dig.within_a_second("db.shop.svc.cluster.local", "A", |a| a.answer.len() == 2)
        .await;
    let a = dig.ask("db.shop.svc.cluster.local", "A");
    assert_eq!(
        sorted(a.answer),
        [
            "db.shop.svc.cluster.local. A 10.42.1.5",
            "db.shop.svc.cluster.local. A 10.42.2.6"
        ]
    );
    let a = dig.ask("db-0.db.shop.svc.cluster.local", "A");
    assert_eq!(a.answer, ["db-0.db.shop.svc.cluster.local. A 10.42.1.5"]);
    let a = dig.ask("10-42-2-6.db.shop.svc.cluster.local", "A");
    assert_eq!(a.answer, ["10-42-2-6.db.shop.svc.cluster.local. A 10.42.2.6"]);
    assert_eq!(dig.ask("db-2.db.shop.svc.cluster.local", "A").status, "NXDOMAIN");
    let srv = dig.ask("_pg._tcp.db.shop.svc.cluster.local", "SRV");
    assert_eq!(
        sorted(srv.answer),
        [
            "_pg._tcp.db.shop.svc.cluster.local. SRV 0 50 5432 10-42-2-6.db.shop.svc.cluster.local.",
            "_pg._tcp.db.shop.svc.cluster.local. SRV 0 50 5432 db-0.db.shop.svc.cluster.local.",
        ]
    );
    assert_eq!(
        sorted(srv.additional),
        [
            "10-42-2-6.db.shop.svc.cluster.local. A 10.42.2.6",
            "db-0.db.shop.svc.cluster.local. A 10.42.1.5",
        ]
    );
    let ptr = dig.ask("5.1.42.10.in-addr.arpa", "PTR");
    assert_eq!(
        ptr.answer,
        ["5.1.42.10.in-addr.arpa. PTR db-0.db.shop.svc.cluster.local."]
    );

    // Updates show within a second: db-2 becomes ready, db-0 leaves.
    cluster
        .slice(
            "shop",
            "db-1",
            "db",
            json!([
                {"addresses": ["10.42.2.6"], "conditions": {"ready": true}},
                {"addresses": ["10.42.3.7"], "hostname": "db-2", "conditions": {"ready": true}},
            ]),
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        )
        .await;
    dig.within_a_second("db-2.db.shop.svc.cluster.local", "A", |a| {
        a.answer == ["db-2.db.shop.svc.cluster.local. A 10.42.3.7"]
    })
    .await;
    dig.within_a_second("db-0.db.shop.svc.cluster.local", "A", |a| a.status == "NXDOMAIN")
        .await;
    // A deleted Service is gone within a second.
    Api::<Service>::namespaced(cluster.client.clone(), "shop")
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    dig.within_a_second("web.shop.svc.cluster.local", "A", |a| a.status == "NXDOMAIN")
        .await;
    dig.within_a_second(&reverse, "PTR", |a| a.status == "NXDOMAIN")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_records_pods_external_names_and_outside_names() {
    let mut cluster = Cluster::start().await;
    cluster
        .service(
            "default",
            json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "db.example.org"}}),
        )
        .await;
    let dig = cluster.dns("cluster.local", vec![]).await;

    let cname = dig.ask("ext.default.svc.cluster.local", "A");
    assert_eq!(cname.status, "NOERROR");
    assert_eq!(
        cname.answer,
        ["ext.default.svc.cluster.local. CNAME db.example.org."]
    );
    let cname = dig.ask("ext.default.svc.cluster.local", "CNAME");
    assert_eq!(
        cname.answer,
        ["ext.default.svc.cluster.local. CNAME db.example.org."]
    );

    let pod = dig.ask("10-42-0-7.default.pod.cluster.local", "A");
    assert_eq!(pod.answer, ["10-42-0-7.default.pod.cluster.local. A 10.42.0.7"]);

    let soa = dig.ask("cluster.local", "SOA");
    assert_eq!(soa.answer.len(), 1);
    assert!(soa.answer[0].starts_with("cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. "));
    assert!(soa.answer[0].ends_with(" 7200 1800 86400 5"), "{:?}", soa.answer);
    // NS names the Services whose endpoints are this server's address (CoreDNS's `nsAddrs`):
    // here 127.0.0.1 is the `kubernetes` Service's endpoint (the API server's address).
    let ns = dig.ask("cluster.local", "NS");
    assert_eq!(
        ns.answer,
        ["cluster.local. NS kubernetes.default.svc.cluster.local."]
    );
    assert_eq!(
        ns.additional,
        ["kubernetes.default.svc.cluster.local. A 10.43.0.1"]
    );
    let ns = dig.ask("ns.dns.cluster.local", "A");
    assert_eq!(ns.answer, ["ns.dns.cluster.local. A 10.43.0.1"]);
    let txt = dig.ask("dns-version.cluster.local", "TXT");
    assert_eq!(txt.answer, ["dns-version.cluster.local. TXT \"1.1.0\""]);

    // Search-path expansions of a complete name are NXDOMAIN, answered at once.
    for name in [
        "kubernetes.default.svc.cluster.local.cluster.local",
        "kubernetes.default.svc.cluster.local.default.svc.cluster.local",
        "kubernetes.default.default.svc.cluster.local",
    ] {
        let start = Instant::now();
        assert_eq!(dig.ask(name, "A").status, "NXDOMAIN", "{name}");
        assert!(start.elapsed() < Duration::from_millis(500));
    }
    // Outside the cluster zones, with nowhere to forward: REFUSED; unknown reverse: NXDOMAIN.
    let outside = dig.ask("example.org", "A");
    assert_eq!(outside.status, "REFUSED");
    assert!(!outside.flags.contains(&"aa".to_owned()));
    let reverse = dig.ask("8.8.8.8.in-addr.arpa", "PTR");
    assert_eq!(reverse.status, "NXDOMAIN");
    assert!(reverse.authority[0].starts_with("in-addr.arpa. SOA ns.dns.in-addr.arpa."));
    // TCP answers the same.
    let tcp = dig.query("kubernetes.default.svc.cluster.local", "A", &["+tcp"]);
    assert_eq!(tcp.answer, ["kubernetes.default.svc.cluster.local. A 10.43.0.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_truncate_over_udp_and_complete_over_tcp() {
    let mut cluster = Cluster::start().await;
    cluster
        .service(
            "default",
            json!({"metadata": {"name": "many"}, "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}),
        )
        .await;
    let endpoints: Vec<_> = (0..100)
        .map(|i| json!({"addresses": [format!("10.42.{}.{}", i / 200, i % 200 + 1)], "conditions": {"ready": true}}))
        .collect();
    cluster
        .slice(
            "default",
            "many-1",
            "many",
            json!(endpoints),
            json!([{"name": "http", "port": 80, "protocol": "TCP"}]),
        )
        .await;
    let dig = cluster.dns("cluster.local", vec![]).await;
    let name = "many.default.svc.cluster.local";

    // UDP without EDNS: at most 512 bytes, TC set (`+ignore`: dig does not retry over TCP).
    let udp = dig.query(name, "A", &["+noedns", "+ignore"]);
    assert!(udp.flags.contains(&"tc".to_owned()), "{udp:?}");
    assert!(
        !udp.answer.is_empty() && udp.answer.len() < 100,
        "{}",
        udp.answer.len()
    );
    // EDNS with a 512-byte buffer: truncated the same way.
    let small = dig.query(name, "A", &["+bufsize=512", "+ignore"]);
    assert!(small.flags.contains(&"tc".to_owned()), "{small:?}");
    assert_eq!(small.status, "NOERROR");
    // The same over TCP is complete.
    let tcp = dig.query(name, "A", &["+noedns", "+tcp"]);
    assert!(!tcp.flags.contains(&"tc".to_owned()));
    assert_eq!(tcp.answer.len(), 100);
    // EDNS with a 4096-byte buffer fits them over UDP.
    let edns = dig.query(name, "A", &["+bufsize=4096", "+ignore"]);
    assert!(!edns.flags.contains(&"tc".to_owned()), "{edns:?}");
    assert_eq!(edns.answer.len(), 100);
    // Without `+ignore` dig retries over TCP after TC, as resolvers do.
    assert_eq!(dig.query(name, "SRV", &["+noedns"]).answer.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_names_are_forwarded_with_failover() {
    let mut cluster = Cluster::start().await;
    // The upstream: another server, authoritative for another domain over the same API.
    let upstream = cluster.dns("upstream.test", vec![]).await;
    cluster
        .service(
            "default",
            json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "kubernetes.default.svc.upstream.test"}}),
        )
        .await;
    // The first upstream is a closed port: every query fails over to the second.
    let dead = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
    let dig = cluster.dns("cluster.local", vec![dead, upstream.addr()]).await;

    for _ in 0..2 {
        let forwarded = dig.ask("kubernetes.default.svc.upstream.test", "A");
        assert_eq!(forwarded.status, "NOERROR");
        assert_eq!(
            forwarded.answer,
            ["kubernetes.default.svc.upstream.test. A 10.43.0.1"]
        );
    }
    let missing = dig.ask("missing.default.svc.upstream.test", "A");
    assert_eq!(missing.status, "NXDOMAIN");
    assert!(
        missing.authority[0].starts_with("upstream.test. SOA"),
        "{missing:?}"
    );
    let tcp = dig.query("kubernetes.default.svc.upstream.test", "A", &["+tcp"]);
    assert_eq!(tcp.answer, ["kubernetes.default.svc.upstream.test. A 10.43.0.1"]);
    // Unknown reverse names fall through to the upstream.
    let reverse = dig.ask("8.8.8.8.in-addr.arpa", "PTR");
    assert_eq!(reverse.status, "NXDOMAIN");
    // An ExternalName outside the zone: the CNAME, then the target's records from upstream.
    let chased = dig.ask("ext.default.svc.cluster.local", "A");
    assert_eq!(
        chased.answer,
        [
            "ext.default.svc.cluster.local. CNAME kubernetes.default.svc.upstream.test.",
            "kubernetes.default.svc.upstream.test. A 10.43.0.1",
        ]
    );
    // Only dead upstreams: SERVFAIL.
    let nowhere = cluster.dns("cluster.local", vec![dead]).await;
    assert_eq!(nowhere.ask("example.org", "A").status, "SERVFAIL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_fails_when_it_cannot_listen_and_stops_when_dropped() {
    let mut cluster = Cluster::start().await;
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = dns::Config {
        listen: vec![taken.local_addr().unwrap()],
        cluster_domain: "cluster.local".into(),
        upstreams: vec![],
        ttl: dns::DEFAULT_TTL,
    };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let error = dns::run(cluster.client.clone(), config, ready_tx)
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("cannot listen on UDP"), "{error:#}");
    assert!(ready_rx.await.is_err(), "never ready");

    // Dropping the future closes the sockets.
    let dig = cluster.dns("cluster.local", vec![]).await;
    assert_eq!(
        dig.ask("kubernetes.default.svc.cluster.local", "A").status,
        "NOERROR"
    );
    cluster.dns.pop().unwrap().abort();
    let start = Instant::now();
    while std::net::TcpListener::bind(dig.addr()).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the TCP port stays bound"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
