//! Serving: TLS from files or a generated self-signed certificate, binding, and graceful shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, middleware, web};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::api::{self, AppState};
use crate::provider::discovery::Health;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate or key file could not be read or parsed.
    #[error("cannot load {what} from {path}: {reason}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Only one of the certificate and key files was given.
    #[error("--tls-cert-file and --tls-private-key-file must be given together")]
    HalfPair,
    /// The self-signed certificate could not be generated or written.
    #[error("cannot create a self-signed certificate in --cert-dir {dir}: {reason}")]
    SelfSigned {
        /// The directory.
        dir: String,
        /// What went wrong.
        reason: String,
    },
    /// `--tls-min-version` or `--tls-cipher-suites` names something unknown.
    #[error("{0}")]
    TlsFlag(String),
    /// rustls rejected the certificate/key pair.
    #[error("invalid TLS certificate or key: {0}")]
    Tls(#[from] rustls::Error),
    /// Binding or serving failed.
    #[error("cannot serve on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub struct TlsSource {
    /// `--tls-cert-file`.
    pub cert_file: Option<PathBuf>,
    /// `--tls-private-key-file`.
    pub key_file: Option<PathBuf>,
    /// `--cert-dir`: where a self-signed pair is written when no files are given.
    pub cert_dir: PathBuf,
    /// Extra subject alternative names for the self-signed certificate.
    pub extra_sans: Vec<String>,
    /// Protocol versions and cipher suites offered.
    pub policy: TlsPolicy,
    /// CAs for client certificates.
    pub client_cas: ClientCas,
}

/// What TLS versions and cipher suites the server offers (`--tls-min-version`,
/// `--tls-cipher-suites`).
#[derive(Debug, Clone)]
pub struct TlsPolicy {
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    tls12_suites: Option<Vec<rustls::SupportedCipherSuite>>,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        Self {
            versions: rustls::ALL_VERSIONS.to_vec(),
            tls12_suites: None,
        }
    }
}

/// Go's names for TLS 1.2 cipher suites (what `--tls-cipher-suites` takes), and the rustls suite
/// for each that rustls implements. Kubernetes, like Go, does not let TLS 1.3 suites be chosen.
const GO_TLS12_SUITES: &[(&str, Option<&rustls::SupportedCipherSuite>)] = {
    use rustls::crypto::ring::cipher_suite as s;
    &[
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            Some(&s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            Some(&s::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            Some(&s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            Some(&s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            Some(&s::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            Some(&s::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
            Some(&s::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            Some(&s::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
        ),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", None),
        ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", None),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", None),
        ("TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", None),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", None),
        ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", None),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", None),
        ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", None),
        ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", None),
        ("TLS_RSA_WITH_AES_128_CBC_SHA", None),
        ("TLS_RSA_WITH_AES_256_CBC_SHA", None),
        ("TLS_RSA_WITH_AES_128_CBC_SHA256", None),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", None),
        ("TLS_RSA_WITH_AES_256_GCM_SHA384", None),
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", None),
        ("TLS_RSA_WITH_RC4_128_SHA", None),
    ]
};

const GO_TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

impl TlsPolicy {
    /// Builds the policy from the flags. Returns warnings for names that are valid for Go but that
    /// rustls does not offer (CBC, RC4, 3DES and RSA key exchange suites, TLS below 1.2); an
    /// unknown name is an error.
    pub fn from_flags(
        min_version: Option<&str>,
        cipher_suites: &[String],
    ) -> Result<(Self, Vec<String>), Error> {
        let mut warnings = Vec::new();
        let versions = match min_version.unwrap_or("VersionTLS12") {
            "VersionTLS10" | "VersionTLS11" => {
                warnings.push("TLS below 1.2 is not offered (rustls implements 1.2 and 1.3); serving TLS 1.2+".to_owned());
                rustls::ALL_VERSIONS.to_vec()
            }
            "VersionTLS12" => rustls::ALL_VERSIONS.to_vec(),
            "VersionTLS13" => vec![&rustls::version::TLS13],
            other => {
                return Err(Error::TlsFlag(format!(
                    "--tls-min-version {other:?} is not one of VersionTLS10, VersionTLS11, VersionTLS12, VersionTLS13"
                )));
            }
        };
        let tls12_suites = if cipher_suites.is_empty() {
            None
        } else {
            let mut chosen = Vec::new();
            for name in cipher_suites
                .iter()
                .map(|n| n.trim())
                .filter(|n| !n.is_empty())
            {
                match GO_TLS12_SUITES.iter().find(|(go, _)| *go == name) {
                    Some((_, Some(suite))) => {
                        if !chosen
                            .iter()
                            .any(|c: &rustls::SupportedCipherSuite| c.suite() == suite.suite())
                        {
                            chosen.push(**suite);
                        }
                    }
                    Some((_, None)) => warnings.push(format!(
                        "cipher suite {name} is not offered: rustls does not implement it"
                    )),
                    None if GO_TLS13_SUITES.contains(&name) => {
                        warnings.push(format!(
                            "cipher suite {name} is a TLS 1.3 suite, which is always enabled"
                        ));
                    }
                    None => {
                        return Err(Error::TlsFlag(format!(
                            "--tls-cipher-suites: unknown cipher suite {name:?}"
                        )));
                    }
                }
            }
            if chosen.is_empty()
                && versions
                    .iter()
                    .any(|v| v.version == rustls::ProtocolVersion::TLSv1_2)
            {
                warnings.push("no TLS 1.2 cipher suite of --tls-cipher-suites is available: only TLS 1.3 is served".into());
            }
            Some(chosen)
        };
        Ok((
            Self {
                versions,
                tls12_suites,
            },
            warnings,
        ))
    }

    fn provider(&self) -> rustls::crypto::CryptoProvider {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(chosen) = &self.tls12_suites {
            provider.cipher_suites.retain(|suite| match suite {
                rustls::SupportedCipherSuite::Tls13(_) => true,
                rustls::SupportedCipherSuite::Tls12(_) => {
                    chosen.iter().any(|c| c.suite() == suite.suite())
                }
            });
        }
        provider
    }

    fn versions(&self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        let tls12_possible = self.tls12_suites.as_ref().is_none_or(|s| !s.is_empty());
        self.versions
            .iter()
            .copied()
            .filter(|v| tls12_possible || v.version != rustls::ProtocolVersion::TLSv1_2)
            .collect()
    }
}

/// The serving certificate, swapped in place when its files change (cert-manager rotation):
/// every new handshake gets the current one, and a pair that fails to load keeps the last good one.
#[derive(Debug)]
pub struct ServingCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: arc_swap::ArcSwap<rustls::sign::CertifiedKey>,
    loaded: std::sync::Mutex<Vec<u8>>,
}

impl rustls::server::ResolvesServerCert for ServingCertificate {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ServingCertificate {
    fn load(&self) -> Result<(Vec<u8>, rustls::sign::CertifiedKey), Error> {
        load_pair(&self.cert_path, &self.key_path, &self.provider)
    }

    /// Re-reads the files; swaps the certificate in when they changed and load. Returns whether
    /// a new certificate is now served.
    pub fn reload(&self) -> Result<bool, Error> {
        let (contents, certified) = self.load()?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if *loaded == contents {
            return Ok(false);
        }
        self.current.store(Arc::new(certified));
        *loaded = contents;
        Ok(true)
    }

    /// Checks the files every `interval`, forever.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        loop {
            actix_web::rt::time::sleep(interval).await;
            match self.reload() {
                Ok(true) => {
                    tracing::info!(cert = %self.cert_path.display(), "serving certificate reloaded")
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "serving certificate not reloaded; the previous one stays in use")
                }
            }
        }
    }
}

/// Reads and parses a PEM certificate chain and key; also returns the raw bytes, to notice changes.
fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<(Vec<u8>, rustls::sign::CertifiedKey), Error> {
    let pem_error = |what: &'static str, path: &Path| {
        let path = path.display().to_string();
        move |e: rustls::pki_types::pem::Error| Error::Pem {
            what,
            path: path.clone(),
            reason: e.to_string(),
        }
    };
    let cert_pem = std::fs::read(cert_path).map_err(|e| Error::Pem {
        what: "certificate",
        path: cert_path.display().to_string(),
        reason: e.to_string(),
    })?;
    let key_pem = std::fs::read(key_path).map_err(|e| Error::Pem {
        what: "private key",
        path: key_path.display().to_string(),
        reason: e.to_string(),
    })?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error("certificate", cert_path))?;
    if chain.is_empty() {
        return Err(Error::Pem {
            what: "certificate",
            path: cert_path.display().to_string(),
            reason: "no certificate found".into(),
        });
    }
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(pem_error("private key", key_path))?;
    let certified = rustls::sign::CertifiedKey::from_der(chain, key, provider)?;
    let mut both = cert_pem;
    both.extend(key_pem);
    Ok((both, certified))
}

/// Loads the certificate pair, or generates a self-signed one (SANs localhost, 127.0.0.1 and the
/// extra names) into `cert_dir`, reusing it on later starts. The returned certificate handle
/// reloads the files on request.
pub fn tls_config(source: &TlsSource) -> Result<ServingTls, Error> {
    let (cert_path, key_path) = match (&source.cert_file, &source.key_file) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) => self_signed(&source.cert_dir, &source.extra_sans)?,
        _ => return Err(Error::HalfPair),
    };
    let provider = Arc::new(source.policy.provider());
    let (contents, certified) = load_pair(&cert_path, &key_path, &provider)?;
    let certificate = Arc::new(ServingCertificate {
        cert_path,
        key_path,
        provider: provider.clone(),
        current: arc_swap::ArcSwap::from_pointee(certified),
        loaded: std::sync::Mutex::new(contents),
    });
    let authority = Arc::new(ClientAuthority::new(provider.clone()));
    let (requestheader, client) = source.client_cas.read()?;
    authority.update(requestheader.as_deref(), client.as_deref())?;
    let config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&source.policy.versions())?
        .with_client_cert_verifier(authority.clone())
        .with_cert_resolver(certificate.clone());
    Ok(ServingTls {
        config,
        certificate,
        peers: authority,
    })
}

/// The server's TLS: rustls config, the reloadable certificate, and (when client CAs are given)
/// what tells front-proxy certificates from client certificates.
pub struct ServingTls {
    /// The rustls config.
    pub config: rustls::ServerConfig,
    /// The serving certificate, for reloads.
    pub certificate: Arc<ServingCertificate>,
    /// Client-certificate classification.
    pub peers: Arc<ClientAuthority>,
}

/// A rustls client-certificate verifier.
type ClientVerifier = Arc<dyn rustls::server::danger::ClientCertVerifier>;

/// PEM bundles of the request-header CA and the client CA.
pub type CaBundles = (Option<Vec<u8>>, Option<Vec<u8>>);

/// CAs that client certificates may chain to.
#[derive(Debug, Clone, Default)]
pub struct ClientCas {
    /// `--requestheader-client-ca-file`: the front-proxy (aggregator) CA.
    pub requestheader: Option<PathBuf>,
    /// `--client-ca-file`: CA of user client certificates.
    pub client: Option<PathBuf>,
}

impl ClientCas {
    /// Reads both files (PEM).
    pub fn read(&self) -> Result<CaBundles, Error> {
        let read = |path: &Option<PathBuf>, what: &'static str| {
            path.as_ref()
                .map(|p| {
                    std::fs::read(p).map_err(|e| Error::Pem {
                        what,
                        path: p.display().to_string(),
                        reason: e.to_string(),
                    })
                })
                .transpose()
        };
        Ok((
            read(&self.requestheader, "request-header CA")?,
            read(&self.client, "client CA")?,
        ))
    }
}

/// The CAs trusted for client certificates, swappable while serving (the authentication
/// ConfigMap rotates them): the TLS verifier (certificates optional, so bearer tokens still work)
/// and what tells a front-proxy certificate from a user's.
pub struct ClientAuthority {
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: arc_swap::ArcSwapOption<Trust>,
}

struct Trust {
    pems: CaBundles,
    any: ClientVerifier,
    front_proxy: Option<ClientVerifier>,
    client: Option<ClientVerifier>,
}

impl std::fmt::Debug for ClientAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuthority")
            .field("configured", &self.current.load().is_some())
            .finish()
    }
}

impl ClientAuthority {
    fn new(provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        Self {
            provider,
            current: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// Trusts these CAs (PEM) from now on. Returns whether anything changed; an unusable bundle is
    /// an error and the previous CAs stay.
    pub fn update(
        &self,
        requestheader: Option<&[u8]>,
        client: Option<&[u8]>,
    ) -> Result<bool, Error> {
        let pems = (
            requestheader.map(<[u8]>::to_vec),
            client.map(<[u8]>::to_vec),
        );
        if self.current.load().as_ref().map(|t| &t.pems) == Some(&pems)
            || (pems == (None, None) && self.current.load().is_none())
        {
            return Ok(false);
        }
        let roots = |pem: Option<&[u8]>,
                     what: &'static str|
         -> Result<Option<rustls::RootCertStore>, Error> {
            let Some(pem) = pem else { return Ok(None) };
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::Pem {
                    what,
                    path: String::new(),
                    reason: e.to_string(),
                })?;
            let mut roots = rustls::RootCertStore::empty();
            if roots.add_parsable_certificates(certs).0 == 0 {
                return Err(Error::Pem {
                    what,
                    path: String::new(),
                    reason: "no CA certificate found".into(),
                });
            }
            Ok(Some(roots))
        };
        let front_proxy_roots = roots(requestheader, "request-header CA")?;
        let client_roots = roots(client, "client CA")?;
        let verifier = |roots: rustls::RootCertStore| -> Result<ClientVerifier, Error> {
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                self.provider.clone(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| Error::Pem {
                what: "client CA",
                path: String::new(),
                reason: e.to_string(),
            })
        };
        let mut all = rustls::RootCertStore::empty();
        for roots in [&front_proxy_roots, &client_roots].into_iter().flatten() {
            all.roots.extend(roots.roots.iter().cloned());
        }
        if all.is_empty() {
            self.current.store(None);
            return Ok(true);
        }
        let trust = Trust {
            any: verifier(all)?,
            front_proxy: front_proxy_roots.map(verifier).transpose()?,
            client: client_roots.map(verifier).transpose()?,
            pems,
        };
        self.current.store(Some(Arc::new(trust)));
        Ok(true)
    }

    /// The identity a verified chain stands for.
    pub fn identify(&self, chain: &[CertificateDer<'_>]) -> Option<crate::auth::PeerIdentity> {
        let trust = self.current.load_full()?;
        let (leaf, intermediates) = chain.split_first()?;
        let now = rustls::pki_types::UnixTime::now();
        let vouches = |verifier: &Option<ClientVerifier>| {
            verifier
                .as_ref()
                .is_some_and(|v| v.verify_client_cert(leaf, intermediates, now).is_ok())
        };
        let (_, certificate) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
        let subject = certificate.subject();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        if vouches(&trust.front_proxy) {
            return Some(crate::auth::PeerIdentity::FrontProxy { common_name });
        }
        if vouches(&trust.client) {
            let organizations = subject
                .iter_organization()
                .filter_map(|a| a.as_str().ok())
                .map(str::to_owned)
                .collect();
            return Some(crate::auth::PeerIdentity::Client {
                common_name,
                organizations,
            });
        }
        None
    }
}

impl rustls::server::danger::ClientCertVerifier for ClientAuthority {
    fn offer_client_auth(&self) -> bool {
        self.current.load().is_some()
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        // No hints: clients with one certificate (kube-aggregator, curl) send it regardless.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        match self.current.load().as_ref() {
            Some(trust) => trust.any.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::General("no client CA is configured".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn self_signed(dir: &Path, extra_sans: &[String]) -> Result<(PathBuf, PathBuf), Error> {
    let cert_path = dir.join("apiserver.crt");
    let key_path = dir.join("apiserver.key");
    // The names a stored certificate was made for: a changed --tls-san makes a new one.
    let sans_path = dir.join("apiserver.sans");
    let mut sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    sans.extend(extra_sans.iter().cloned());
    let sans_text = sans.join("\n");
    let stored_sans = std::fs::read_to_string(&sans_path).unwrap_or_default();
    if cert_path.exists() && key_path.exists() && stored_sans == sans_text {
        return Ok((cert_path, key_path));
    }
    let fail = |reason: String| Error::SelfSigned {
        dir: dir.display().to_string(),
        reason,
    };
    let generated = rcgen::generate_simple_self_signed(sans).map_err(|e| fail(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    std::fs::write(&cert_path, generated.cert.pem()).map_err(|e| fail(e.to_string()))?;
    write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    std::fs::write(&sans_path, &sans_text).map_err(|e| fail(e.to_string()))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed serving certificate");
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

/// How the server stops on SIGTERM or SIGINT.
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    /// How long readiness fails before the server stops accepting connections.
    pub delay: Duration,
    /// How long in-flight requests may take to finish after that.
    pub drain: Duration,
}

/// How many TLS handshakes may be in progress, and for how long each: enough room that
/// connections which never finish a handshake cannot make real clients wait.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeLimits {
    /// How long a client may take to complete its handshake.
    pub timeout: Duration,
    /// Handshakes in progress at once, over all workers.
    pub max_concurrent: usize,
}

/// Serves the API over HTTPS. On SIGTERM or SIGINT, readiness turns false first, then after
/// `shutdown.delay` the server stops accepting and drains in-flight requests for up to
/// `shutdown.drain`. `worker_state` runs once on each worker thread, so that each worker can own
/// its outbound connections.
pub async fn serve(
    worker_state: impl Fn() -> AppState + Send + Clone + 'static,
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    peers: Arc<ClientAuthority>,
    health: Arc<Health>,
    shutdown: Shutdown,
    handshakes: HandshakeLimits,
) -> Result<(), Error> {
    // actix counts handshakes per worker; it starts one worker per available core.
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(worker_state()))
            .wrap(middleware::from_fn(api::guard))
            .wrap(middleware::from_fn(api::observe))
            .configure(api::configure)
    })
    .on_connect(move |connection, extensions| {
        // The verified client certificate's identity, for the auth middleware.
        type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
        let identity = connection
            .downcast_ref::<Tls>()
            .and_then(|tls| tls.get_ref().1.peer_certificates())
            .and_then(|chain| peers.identify(chain));
        if let Some(identity) = identity {
            extensions.insert(identity);
        }
    })
    .disable_signals()
    .workers(workers)
    .tls_handshake_timeout(handshakes.timeout)
    .max_connection_rate(handshakes.max_concurrent.div_ceil(workers).max(1))
    .shutdown_timeout(shutdown.drain.as_secs())
    .bind_rustls_0_23(addr, tls)
    .map_err(|source| Error::Bind { addr, source })?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let signal = termination_signal().await;
        health.begin_shutdown();
        tracing::info!(signal, delay = ?shutdown.delay, "shutting down: readiness fails, then in-flight requests drain");
        actix_web::rt::time::sleep(shutdown.delay).await;
        handle.stop(true).await;
    });
    tracing::info!(%addr, "serving HTTPS");
    server.await.map_err(|source| Error::Bind { addr, source })
}

/// Waits for SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C) and names it.
async fn termination_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        // Without signal handlers there is nothing to wait for but the process being killed.
        _ => std::future::pending().await,
    }
}

/// Installs ring as rustls' process-wide crypto provider (call once, first thing).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_reused_until_the_names_change() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let source = |sans: &[&str]| TlsSource {
            cert_file: None,
            key_file: None,
            cert_dir: dir.path().to_owned(),
            extra_sans: sans.iter().map(|s| s.to_string()).collect(),
            policy: TlsPolicy::default(),
            client_cas: ClientCas::default(),
        };
        tls_config(&source(&["adapter.monitoring.svc"])).unwrap();
        let first = std::fs::read(dir.path().join("apiserver.crt")).unwrap();
        tls_config(&source(&["adapter.monitoring.svc"])).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("apiserver.crt")).unwrap(),
            first,
            "reused"
        );
        tls_config(&source(&["adapter.monitoring.svc", "other.example"])).unwrap();
        assert_ne!(
            std::fs::read(dir.path().join("apiserver.crt")).unwrap(),
            first,
            "regenerated for new names"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("apiserver.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn half_a_certificate_pair_is_an_error() {
        let source = TlsSource {
            cert_file: Some("/x.crt".into()),
            key_file: None,
            cert_dir: "/tmp".into(),
            extra_sans: vec![],
            policy: TlsPolicy::default(),
            client_cas: ClientCas::default(),
        };
        assert!(matches!(tls_config(&source), Err(Error::HalfPair)));
    }

    #[test]
    fn tls_flags_map_go_names_onto_rustls() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // prometheus-adapter's deploy/manifests list: GCM and ChaCha suites are kept, the rest warn.
        let (policy, warnings) = TlsPolicy::from_flags(
            None,
            &names(&[
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
                "TLS_RSA_WITH_AES_128_CBC_SHA",
                "TLS_AES_128_GCM_SHA256",
            ]),
        )
        .unwrap();
        assert_eq!(policy.tls12_suites.as_ref().unwrap().len(), 2);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let provider = policy.provider();
        assert_eq!(
            provider.cipher_suites.len(),
            3 + 2,
            "three TLS 1.3 suites and the two chosen"
        );
        assert_eq!(policy.versions().len(), 2);

        let error = TlsPolicy::from_flags(None, &names(&["TLS_NOT_A_SUITE"])).unwrap_err();
        assert!(error.to_string().contains("TLS_NOT_A_SUITE"));
        assert!(TlsPolicy::from_flags(Some("VersionTLS14"), &[]).is_err());
        let (tls13, _) = TlsPolicy::from_flags(Some("VersionTLS13"), &[]).unwrap();
        assert_eq!(tls13.versions(), vec![&rustls::version::TLS13]);
        let (only_cbc, warnings) =
            TlsPolicy::from_flags(None, &names(&["TLS_RSA_WITH_AES_128_CBC_SHA"])).unwrap();
        assert_eq!(
            only_cbc.versions(),
            vec![&rustls::version::TLS13],
            "{warnings:?}"
        );
    }
}
