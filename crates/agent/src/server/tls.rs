//! The kubelet API's TLS: a self-signed serving certificate of the agent's own (kube-apiserver
//! verifies kubelet serving certificates only with `--kubelet-certificate-authority`), kept in
//! the agent's directory across restarts; client certificates verified against the cluster CA.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// The TLS configuration: HTTP/1.1 only (streaming upgrades), client certificates optional at
/// the handshake but verified against `ca_pem` when presented (the HTTP layer answers 401
/// without one).
pub fn server_config(
    dir: &Path,
    ca_pem: &str,
    node_name: &str,
    ips: &[IpAddr],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert_pem, key_pem) = load_or_create_serving(dir, node_name, ips)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.context("reading the cluster CA")?)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("building the client certificate verifier")?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("reading the kubelet serving certificate")?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .context("reading the kubelet serving key")?
        .context("no key in the kubelet serving key file")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("loading the kubelet serving certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `kubelet.crt` / `kubelet.key` in `dir`, issued again when they no longer name `ips`.
fn load_or_create_serving(dir: &Path, node_name: &str, ips: &[IpAddr]) -> anyhow::Result<(String, String)> {
    let (cert_path, key_path, names_path) = (
        dir.join("kubelet.crt"),
        dir.join("kubelet.key"),
        dir.join("kubelet.names"),
    );
    let mut names: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    names.push(node_name.to_owned());
    names.push("localhost".to_owned());
    let wanted = names.join(",");
    if let (Ok(cert), Ok(key), Ok(have)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
        std::fs::read_to_string(&names_path),
    ) && have == wanted
    {
        return Ok((cert, key));
    }
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{node_name}@kubelet"));
    for ip in ips {
        params.subject_alt_names.push(rcgen::SanType::IpAddress(*ip));
    }
    for dns in [node_name, "localhost"] {
        params.subject_alt_names.push(rcgen::SanType::DnsName(
            dns.try_into().context("node name as a DNS name")?,
        ));
    }
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(365 * 24 * 3600)).into();
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    std::fs::create_dir_all(dir)?;
    write_private(&key_path, &key_pem)?;
    std::fs::write(&cert_path, &cert_pem)?;
    std::fs::write(&names_path, &wanted)?;
    Ok((cert_pem, key_pem))
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(contents.as_bytes())?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The user (CommonName) and groups (Organizations) of a verified client certificate.
pub fn subject(der: &CertificateDer<'_>) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .last()?;
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_owned)
        .collect();
    Some((name.to_owned(), groups))
}
