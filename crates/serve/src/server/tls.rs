//! The serving certificate: from files (reloaded when they change) or self-signed in `--cert-dir`, and the TLS versions and cipher suites of `--tls-min-version` and `--tls-cipher-suites`, in Go's names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::Error;
use super::client_ca::{ClientAuthority, ClientCas};
use std::time::Duration;

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
    let pem_error = |what: &'static str, path: &Path, reason: &dyn std::fmt::Display| Error::Pem {
        what,
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let cert_pem = std::fs::read(cert_path).map_err(|e| pem_error("certificate", cert_path, &e))?;
    let key_pem = std::fs::read(key_path).map_err(|e| pem_error("private key", key_path, &e))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("certificate", cert_path, &e))?;
    if chain.is_empty() {
        return Err(pem_error("certificate", cert_path, &"no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem_error("private key", key_path, &e))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::install_crypto_provider;

    #[test]
    fn self_signed_certificate_is_reused_until_the_names_change() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let source = |sans: &[&str]| TlsSource {
            cert_file: None,
            key_file: None,
            cert_dir: dir.path().to_owned(),
            extra_sans: sans.iter().map(|s| s.to_string()).collect(),
            policy: TlsPolicy::from_flags(None, &[]).unwrap().0,
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
            policy: TlsPolicy::from_flags(None, &[]).unwrap().0,
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
