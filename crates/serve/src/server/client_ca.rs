//! Client certificates, verified at the TLS layer: the front-proxy and client CAs (from files or the authentication ConfigMap, swappable while serving), and what tells a front-proxy certificate from a user's.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::Error;

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
    pub(super) fn new(provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
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
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
