//! The cluster's own PKI: a CA, the API server's serving certificate, the admin client
//! certificate, the kubeconfig that embeds them, and the node join token.
//!
//! Like k3s, rkube is self-contained: on first start it creates a certificate authority under
//! `<data-dir>/tls` and issues everything else from it, so `kubectl` works over HTTPS without any
//! setup. Clients trust the cluster through the CA embedded in their kubeconfig.
//!
//! Design choices, and why:
//!
//! - **The CA is never replaced silently.** It is the trust root copied into every kubeconfig
//!   and every joined node; a new CA would lock all of them out. A CA file that is missing its
//!   partner, unreadable or corrupt is therefore an error that names the file, not a reason to
//!   start over. Leaf certificates, in contrast, can be re-derived from the CA at any time, so
//!   the serving certificate is re-issued when it no longer covers the wanted names (say the node
//!   IP changed), and a leaf that expires within 90 days, was not signed by this CA, or does not
//!   match its key is re-issued too (k3s renews the same way at start-up).
//! - **Client certificates are optional** on the TLS handshake. One port serves callers that
//!   authenticate with a certificate (kubectl with the admin kubeconfig) and callers that send a
//!   bearer token (service accounts in pods, node join tokens) or nothing at all (anonymous
//!   `/healthz`, `/version`), exactly as kube-apiserver does. A certificate that *is* presented
//!   must chain to our CA and carry clientAuth, otherwise the handshake fails; authorization of
//!   anonymous requests is the HTTP layer's business.
//! - **Identity from a certificate** follows kube-apiserver's x509 authenticator: the subject's
//!   CommonName is the user, every Organization is a group. `system:admin` in `system:masters`
//!   is the cluster admin.
//! - **ECDSA P-256 keys** (rcgen's default): fast, and accepted by every client library (Go,
//!   Python, Java, JavaScript, Rust).
//! - **Files**: certificates are 0644, keys and the token 0600, the directory 0700; every file is
//!   written to a temporary name and renamed, so a crash never leaves half a key behind.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PublicKeyData as _, SanType, SerialNumber,
};
use ring::rand::SecureRandom as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

#[cfg(test)]
mod tests;

/// The user name of the admin client certificate.
pub const ADMIN_USER: &str = "system:admin";
/// The group of the admin client certificate; upstream's RBAC binds it to `cluster-admin`.
pub const ADMIN_GROUP: &str = "system:masters";

/// The user of the API server's client certificate towards kubelets.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// Leaf certificates that expire sooner than this are re-issued at start-up.
const RENEW_BEFORE: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// Certificates start to be valid this long before their issue, to tolerate clock skew.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// Names the serving certificate must cover beyond the built-in ones (`localhost`, the
/// loopback addresses, `kubernetes.default.svc…` and the host name): typically the bind
/// address, the node IP, the first service IP and any `--tls-san`. Unspecified addresses
/// (`0.0.0.0`, `::`) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServingNames {
    pub ips: Vec<IpAddr>,
    pub dns: Vec<String>,
}

/// An authenticated user (upstream's `user.Info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
    /// Set by token authenticators (a service account's uid, a static token's uid column).
    pub uid: Option<String>,
    /// Upstream's `extra` (service-account tokens: `authentication.kubernetes.io/pod-name` …).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

/// A certificate and its private key, both PEM (the key in PKCS#8).
#[derive(Clone)]
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAndKey").finish_non_exhaustive()
    }
}

/// The loaded PKI of one server. See the module docs.
pub struct Pki {
    dir: PathBuf,
    ca_cert_pem: String,
    ca_cert_der: CertificateDer<'static>,
    ca: Issuer<'static, KeyPair>,
    serving: CertAndKey,
    admin: CertAndKey,
    kubelet_client: CertAndKey,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What a leaf certificate is for; compared against an existing one to decide on re-issue.
struct LeafSpec {
    common_name: String,
    organization: Option<String>,
    usage: ExtendedKeyUsagePurpose,
    dns: BTreeSet<String>,
    ips: BTreeSet<IpAddr>,
}

impl Pki {
    /// Loads the PKI from `dir` (creating the directory, mode 0700, and whatever is missing),
    /// making sure the serving certificate covers `names`. See the module docs for what is reused,
    /// what is re-issued and what is an error.
    pub fn load_or_create(dir: &Path, names: &ServingNames) -> anyhow::Result<Pki> {
        create_private_dir(dir)?;
        let (ca_cert_pem, ca_cert_der, ca_key) = load_or_create_ca(dir)?;
        let ca = Issuer::from_ca_cert_der(&ca_cert_der, ca_key)
            .with_context(|| format!("using {} as issuer", dir.join("ca.crt").display()))?;
        let serving = load_or_issue_leaf(dir, "serving", &ca_cert_der, &ca, &serving_spec(names)?)?;
        let admin = load_or_issue_leaf(
            dir,
            "admin",
            &ca_cert_der,
            &ca,
            &client_spec(ADMIN_USER, Some(ADMIN_GROUP)),
        )?;
        let kubelet_client = load_or_issue_leaf(
            dir,
            "kubelet-client",
            &ca_cert_der,
            &ca,
            &client_spec(KUBELET_CLIENT_USER, Some(ADMIN_GROUP)),
        )?;
        Ok(Pki {
            dir: dir.to_owned(),
            ca_cert_pem,
            ca_cert_der,
            ca,
            serving,
            admin,
            kubelet_client,
        })
    }

    /// The directory the files live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate as PEM, byte for byte as in `ca.crt` (what clients must trust; also
    /// the content of the `kube-root-ca.crt` config maps).
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The CA certificate as DER.
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        &self.ca_cert_der
    }

    /// The admin client certificate (`system:admin`, group `system:masters`).
    pub fn admin(&self) -> &CertAndKey {
        &self.admin
    }

    /// The client certificate the API server presents to kubelets (`kube-apiserver-kubelet-client`,
    /// group `system:masters`, as k3s issues it).
    pub fn kubelet_client(&self) -> &CertAndKey {
        &self.kubelet_client
    }

    /// Issues a new client certificate (1 year, clientAuth) for `user` in `group`, signed by the
    /// CA; nothing is written to disk. One group at most: rcgen keeps one value per subject
    /// attribute type.
    pub fn issue_client_cert(&self, user: &str, group: Option<&str>) -> anyhow::Result<CertAndKey> {
        issue_leaf(&self.ca, &client_spec(user, group))
    }

    /// The TLS configuration of the API server: TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`, the
    /// serving certificate, and client certificates optional but verified against the CA when
    /// presented (see the module docs for why).
    pub fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(self.root_store()?, provider.clone())
            .allow_unauthenticated()
            .build()
            .context("building the client certificate verifier")?;
        let (chain, key) = rustls_identity(&self.serving)?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .context("loading the serving certificate")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// A TLS client configuration that trusts the CA and, if given, presents `identity`: what
    /// in-process components and tests use to reach the API server.
    pub fn client_config(&self, identity: Option<&CertAndKey>) -> anyhow::Result<Arc<ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(self.root_store()?);
        let mut config = match identity {
            Some(identity) => {
                let (chain, key) = rustls_identity(identity)?;
                builder.with_client_auth_cert(chain, key)?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn root_store(&self) -> anyhow::Result<Arc<RootCertStore>> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca_cert_der.clone())
            .context("adding the CA to the root store")?;
        Ok(Arc::new(roots))
    }
}

/// The identity a verified client certificate (DER) stands for, as kube-apiserver's x509
/// authenticator derives it: the subject's CommonName is the user name (the last one if there
/// are several, as Go's parser keeps), every Organization is a group. `None` if the
/// certificate does not parse or has no (or an empty) CommonName.
///
/// This does not verify anything: call it on the peer certificate of a TLS session whose
/// verifier (see [`Pki::server_config`]) already checked the chain.
pub fn identity_from_cert(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .last()?;
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_owned)
        .collect();
    Some(UserInfo {
        name: name.to_owned(),
        groups,
        ..UserInfo::default()
    })
}

/// Writes a kubeconfig for `server_url` to `path` (mode 0600, atomically, creating the parent
/// directory) with cluster, user and context all named `default`, the CA and the client
/// credentials embedded. `user` is the identity of the client certificate: [`ADMIN_USER`] embeds
/// the stored admin certificate; any other name gets a freshly issued certificate without groups.
pub fn write_kubeconfig(path: &Path, server_url: &str, pki: &Pki, user: &str) -> anyhow::Result<()> {
    let issued;
    let identity = if user == ADMIN_USER {
        pki.admin()
    } else {
        issued = pki.issue_client_cert(user, None)?;
        &issued
    };
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    // A JSON string is a valid YAML double-quoted scalar, so this quotes any URL safely.
    let server = serde_json::to_string(server_url)?;
    let yaml = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: default
  cluster:
    server: {server}
    certificate-authority-data: {ca}
contexts:
- name: default
  context:
    cluster: default
    user: default
current-context: default
preferences: {{}}
users:
- name: default
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
",
        ca = b64(pki.ca_cert_pem()),
        cert = b64(&identity.cert_pem),
        key = b64(&identity.key_pem),
    );
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    write_atomic(path, yaml.as_bytes(), 0o600)
}

/// The node join token in `path`, created on first use in k3s's format
/// `K10<sha256 of the CA certificate, hex>::server:<32 random hex characters>`: the prefix lets a
/// joining node check the CA it is shown before trusting it. An existing file is reused as is
/// (trimmed; it may hold a token chosen by the operator); an empty one is an error.
pub fn load_or_create_token(path: &Path, pki: &Pki) -> anyhow::Result<String> {
    let ca_hash = hex(ring::digest::digest(&ring::digest::SHA256, pki.ca_cert_pem().as_bytes()).as_ref());
    match fs::read_to_string(path) {
        Ok(contents) => {
            let token = contents.trim();
            if token.is_empty() {
                bail!("token file {} is empty", path.display());
            }
            if let Some(hash) = token.strip_prefix("K10").and_then(|t| t.split("::").next())
                && hash != ca_hash
            {
                tracing::warn!(
                    file = %path.display(),
                    "the join token's CA hash does not match the current CA; joining nodes will reject it"
                );
            }
            Ok(token.to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = format!("K10{ca_hash}::server:{}", hex(&random_bytes::<16>()?));
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            write_atomic(path, format!("{token}\n").as_bytes(), 0o600)?;
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("reading token file {}", path.display())),
    }
}

// ---------------------------------------------------------------------------------------------
// Loading and issuing.

/// Reads or creates `ca.crt`/`ca.key`. Anything but "both present and consistent" or "both
/// absent" is an error: the CA is never replaced behind the operator's back.
fn load_or_create_ca(dir: &Path) -> anyhow::Result<(String, CertificateDer<'static>, KeyPair)> {
    let (crt_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    match (crt_path.exists(), key_path.exists()) {
        (true, true) => {
            let (pem, der) = read_cert(&crt_path)?;
            let key = read_key(&key_path)?;
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| anyhow!("{}: not a valid certificate: {e}", crt_path.display()))?;
            if cert.public_key().raw != key.subject_public_key_info().as_slice() {
                bail!("{} does not belong to {}", key_path.display(), crt_path.display());
            }
            if !cert.validity().is_valid() {
                tracing::warn!(file = %crt_path.display(), "the cluster CA certificate is not valid now (expired?)");
            }
            Ok((pem, der, key))
        }
        (false, false) => {
            let key = KeyPair::generate().context("generating the CA key")?;
            let now = SystemTime::now();
            let unix = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            let mut params = CertificateParams::default();
            params.distinguished_name = DistinguishedName::new();
            params
                .distinguished_name
                .push(DnType::CommonName, format!("rkube-ca@{unix}"));
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
            ];
            params.not_before = (now - BACKDATE).into();
            params.not_after = (now + CA_VALIDITY).into();
            params.serial_number = Some(random_serial()?);
            let cert = params
                .self_signed(&key)
                .context("self-signing the CA certificate")?;
            // Key first: a crash in between leaves a lone key, which the next start reports.
            write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
            write_atomic(&crt_path, cert.pem().as_bytes(), 0o644)?;
            tracing::info!(dir = %dir.display(), "created the cluster CA");
            // Re-read so that the PEM is exactly what is on disk (the token hashes it).
            let (pem, der) = read_cert(&crt_path)?;
            Ok((pem, der, key))
        }
        (true, false) => bail!(
            "{} exists but {} is missing; restore it, or remove both to create a new CA \
             (which invalidates every kubeconfig and joined node)",
            crt_path.display(),
            key_path.display()
        ),
        (false, true) => bail!(
            "{} exists but {} is missing; restore it, or remove both to create a new CA \
             (which invalidates every kubeconfig and joined node)",
            key_path.display(),
            crt_path.display()
        ),
    }
}

/// Reads `<stem>.crt`/`<stem>.key` and keeps them if they still fit `spec`; otherwise issues and
/// writes a new pair. Unreadable or corrupt files are an error naming the file.
fn load_or_issue_leaf(
    dir: &Path,
    stem: &str,
    ca_der: &CertificateDer<'_>,
    ca: &Issuer<'_, KeyPair>,
    spec: &LeafSpec,
) -> anyhow::Result<CertAndKey> {
    let crt_path = dir.join(format!("{stem}.crt"));
    let key_path = dir.join(format!("{stem}.key"));
    let reason = if crt_path.exists() && key_path.exists() {
        let (cert_pem, der) = read_cert(&crt_path)?;
        let key = read_key(&key_path)?;
        match stale_reason(&der, &key, ca_der, spec) {
            Ok(None) => {
                return Ok(CertAndKey {
                    cert_pem,
                    key_pem: key.serialize_pem(),
                });
            }
            Ok(Some(reason)) => reason,
            Err(e) => return Err(e.context(format!("checking {}", crt_path.display()))),
        }
    } else if crt_path.exists() || key_path.exists() {
        "its certificate or key is missing".to_owned()
    } else {
        "it does not exist yet".to_owned()
    };
    tracing::info!(cert = %crt_path.display(), %reason, "issuing certificate");
    let issued = issue_leaf(ca, spec)?;
    write_atomic(&key_path, issued.key_pem.as_bytes(), 0o600)?;
    write_atomic(&crt_path, issued.cert_pem.as_bytes(), 0o644)?;
    Ok(issued)
}

/// Why an existing leaf certificate must be re-issued, if it must.
fn stale_reason(der: &[u8], key: &KeyPair, ca_der: &[u8], spec: &LeafSpec) -> anyhow::Result<Option<String>> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| anyhow!("not a valid certificate: {e}"))?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der).map_err(|e| anyhow!("CA: {e}"))?;
    if cert.issuer().as_raw() != ca.subject().as_raw()
        || cert.verify_signature(Some(ca.public_key())).is_err()
    {
        return Ok(Some("it was not signed by the current CA".into()));
    }
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Ok(Some("it does not match its key".into()));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let not_after = cert.validity().not_after.timestamp();
    if not_after - now < RENEW_BEFORE.as_secs() as i64 {
        return Ok(Some(format!(
            "it expires in less than {} days",
            RENEW_BEFORE.as_secs() / DAY.as_secs()
        )));
    }
    let (dns, ips) = cert_sans(&cert)?;
    let missing: Vec<String> = spec
        .dns
        .iter()
        .filter(|d| !dns.contains(*d))
        .cloned()
        .chain(
            spec.ips
                .iter()
                .filter(|ip| !ips.contains(*ip))
                .map(IpAddr::to_string),
        )
        .collect();
    if !missing.is_empty() {
        return Ok(Some(format!("it does not cover {}", missing.join(", "))));
    }
    let wanted = UserInfo {
        name: spec.common_name.clone(),
        groups: spec.organization.iter().cloned().collect(),
        ..UserInfo::default()
    };
    if identity_from_cert(der) != Some(wanted) {
        return Ok(Some("its subject changed".into()));
    }
    Ok(None)
}

/// The DNS names (lower case) and IP addresses in a certificate's SubjectAlternativeName.
fn cert_sans(cert: &X509Certificate<'_>) -> anyhow::Result<(BTreeSet<String>, BTreeSet<IpAddr>)> {
    let mut dns = BTreeSet::new();
    let mut ips = BTreeSet::new();
    if let Some(san) = cert
        .subject_alternative_name()
        .map_err(|e| anyhow!("bad SubjectAlternativeName: {e}"))?
    {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    dns.insert(d.to_ascii_lowercase());
                }
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        ips.insert(IpAddr::from(a));
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        ips.insert(IpAddr::from(a));
                    }
                }
                _ => {}
            }
        }
    }
    Ok((dns, ips))
}

fn issue_leaf(ca: &Issuer<'_, KeyPair>, spec: &LeafSpec) -> anyhow::Result<CertAndKey> {
    let key = KeyPair::generate().context("generating a key")?;
    let now = SystemTime::now();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, spec.common_name.as_str());
    if let Some(org) = &spec.organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org.as_str());
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![spec.usage.clone()];
    params.use_authority_key_identifier_extension = true;
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + LEAF_VALIDITY).into();
    params.serial_number = Some(random_serial()?);
    for d in &spec.dns {
        let name = d
            .clone()
            .try_into()
            .with_context(|| format!("invalid DNS name {d:?}"))?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    params
        .subject_alt_names
        .extend(spec.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let cert = params
        .signed_by(&key, ca)
        .with_context(|| format!("issuing the certificate for {}", spec.common_name))?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The serving certificate: the built-in names, the host name and the caller's names.
fn serving_spec(names: &ServingNames) -> anyhow::Result<LeafSpec> {
    let mut dns: BTreeSet<String> = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    match hostname() {
        Some(h) if is_dns_name(&h) => {
            dns.insert(h);
        }
        Some(h) => {
            tracing::warn!(hostname = %h, "the host name is not a valid DNS name; not adding it to the serving certificate")
        }
        None => {}
    }
    for d in &names.dns {
        let d = d.trim().to_ascii_lowercase();
        if !is_dns_name(&d) {
            bail!("{d:?} is not a valid DNS name for the serving certificate");
        }
        dns.insert(d);
    }
    let mut ips: BTreeSet<IpAddr> = [Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()].into();
    ips.extend(names.ips.iter().copied().filter(|ip| !ip.is_unspecified()));
    Ok(LeafSpec {
        common_name: "kube-apiserver".to_owned(),
        organization: None,
        usage: ExtendedKeyUsagePurpose::ServerAuth,
        dns,
        ips,
    })
}

fn client_spec(user: &str, group: Option<&str>) -> LeafSpec {
    LeafSpec {
        common_name: user.to_owned(),
        organization: group.map(str::to_owned),
        usage: ExtendedKeyUsagePurpose::ClientAuth,
        dns: BTreeSet::new(),
        ips: BTreeSet::new(),
    }
}

/// The machine's host name, lower case (Linux; `None` if it cannot be read).
fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .map(|h| h.trim().to_ascii_lowercase())
        .find(|h| !h.is_empty())
}

/// A DNS name (labels of letters, digits, `-`, `_`, not starting or ending with `-`), or a
/// wildcard `*.` in front of one.
pub(crate) fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

// ---------------------------------------------------------------------------------------------
// Files and bytes.

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Writes `data` to `path` with `mode` through a temporary file in the same directory and a
/// rename, so readers see the old or the new contents, never a mix.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let result = (|| {
        let _ = fs::remove_file(&tmp); // a leftover of a crash
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?; // the umask may have cut bits
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Make the rename durable; not all file systems support syncing a directory.
        let _ = fs::File::open(parent).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Reads a PEM certificate file: its text and its first certificate as DER.
fn read_cert(path: &Path) -> anyhow::Result<(String, CertificateDer<'static>)> {
    let pem = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .ok_or_else(|| anyhow!("{}: no PEM certificate in the file", path.display()))?
        .with_context(|| format!("{}: invalid PEM", path.display()))?;
    x509_parser::parse_x509_certificate(&der)
        .map_err(|e| anyhow!("{}: not a valid certificate: {e}", path.display()))?;
    Ok((pem, der))
}

/// Reads a PEM private key file.
pub(crate) fn read_key(path: &Path) -> anyhow::Result<KeyPair> {
    let pem = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    KeyPair::from_pem(&pem).map_err(|e| anyhow!("{}: not a valid private key: {e}", path.display()))
}

/// A certificate chain and key in rustls's types.
fn rustls_identity(
    identity: &CertAndKey,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = rustls_pemfile::certs(&mut identity.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut identity.key_pem.as_bytes())?
        .ok_or_else(|| anyhow!("no PEM private key"))?;
    Ok((chain, key))
}

fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut buf = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| anyhow!("the operating system's random number generator failed"))?;
    Ok(buf)
}

/// A random positive 128-bit serial number (RFC 5280 wants them unique per CA).
fn random_serial() -> anyhow::Result<SerialNumber> {
    let mut bytes = random_bytes::<16>()?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40; // positive, and no leading zero byte to strip
    Ok(SerialNumber::from_slice(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
