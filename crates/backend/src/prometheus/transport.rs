//! Credentials and trust for reaching Prometheus from a kubeconfig (`--prometheus-auth-config`) or
//! the pod's service account (`--prometheus-auth-incluster`), as prometheus-adapter builds its
//! transport: the current context's user credentials and its cluster's CA; the URL stays
//! `--prometheus-url`'s.

use std::path::{Path, PathBuf};

use base64::Engine;
use secrecy::ExposeSecret;

use super::Error;

/// Where a pod's service-account token and CA are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How to authenticate to Prometheus and which CAs to trust.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TransportAuth {
    /// CA bundle (PEM) to verify Prometheus with, instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// `insecure-skip-tls-verify`.
    pub insecure: bool,
    /// A bearer token given inline.
    pub token: Option<String>,
    /// A bearer token file, re-read when it changes.
    pub token_file: Option<PathBuf>,
    /// Client certificate and key (PEM, one after the other).
    pub identity_pem: Option<Vec<u8>>,
}

/// Says which credentials there are, never what they are.
impl std::fmt::Debug for TransportAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportAuth")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "…"))
            .field("insecure", &self.insecure)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field(
                "identity_pem",
                &self.identity_pem.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn config_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Config(format!(
        "--prometheus-auth-config {}: {what}",
        path.display()
    ))
}

/// Reads the current context of a kubeconfig: its user's token, token file or client certificate
/// (files or inline data), and its cluster's CA. Relative paths are relative to the file.
pub fn from_kubeconfig(path: &Path) -> Result<TransportAuth, Error> {
    let config = kube::config::Kubeconfig::read_from(path).map_err(|e| config_error(path, e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |file: &str| base.join(file);
    let read = |file: &str| {
        std::fs::read(resolve(file)).map_err(|e| config_error(path, format!("{file}: {e}")))
    };
    let decode = |field: &str, data: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| config_error(path, format!("{field} is not base64: {e}")))
    };
    let context_name = config
        .current_context
        .clone()
        .ok_or_else(|| config_error(path, "has no current-context"))?;
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| config_error(path, format!("has no context {context_name:?}")))?;
    let mut auth = TransportAuth::default();
    if let Some(cluster) = config
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
    {
        auth.insecure = cluster.insecure_skip_tls_verify.unwrap_or(false);
        auth.ca_pem = match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(data), _) => Some(decode("certificate-authority-data", data)?),
            (None, Some(file)) => Some(read(file)?),
            (None, None) => None,
        };
    }
    let Some(user_name) = &context.user else {
        return Ok(auth);
    };
    let user = config
        .auth_infos
        .iter()
        .find(|u| &u.name == user_name)
        .and_then(|u| u.auth_info.as_ref())
        .ok_or_else(|| config_error(path, format!("has no user {user_name:?}")))?;
    if user.exec.is_some() || user.auth_provider.is_some() {
        return Err(config_error(
            path,
            format!(
                "user {user_name:?} authenticates with exec or auth-provider, which prom-adapter does not run; give a token, a token file or a client certificate"
            ),
        ));
    }
    auth.token = user.token.as_ref().map(|t| t.expose_secret().to_owned());
    auth.token_file = user.token_file.as_deref().map(resolve);
    let certificate = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(data), _) => Some(decode("client-certificate-data", data)?),
        (None, Some(file)) => Some(read(file)?),
        (None, None) => None,
    };
    let key = match (&user.client_key_data, &user.client_key) {
        (Some(data), _) => Some(decode("client-key-data", data.expose_secret())?),
        (None, Some(file)) => Some(read(file)?),
        (None, None) => None,
    };
    auth.identity_pem = match (certificate, key) {
        (Some(mut certificate), Some(key)) => {
            certificate.push(b'\n');
            certificate.extend(key);
            Some(certificate)
        }
        (None, None) => None,
        _ => {
            return Err(config_error(
                path,
                format!("user {user_name:?} has a client certificate or key without the other"),
            ));
        }
    };
    Ok(auth)
}

/// The pod's service account: its token (re-read when it rotates) and the cluster's CA.
pub fn in_cluster(dir: &Path) -> Result<TransportAuth, Error> {
    let token = dir.join("token");
    let ca = dir.join("ca.crt");
    let ca_pem = std::fs::read(&ca).map_err(|e| {
        Error::Config(format!(
            "--prometheus-auth-incluster: {}: {e} (is this running in a pod with a service account token mounted?)",
            ca.display()
        ))
    })?;
    if !token.is_file() {
        return Err(Error::Config(format!(
            "--prometheus-auth-incluster: no service account token at {}",
            token.display()
        )));
    }
    Ok(TransportAuth {
        ca_pem: Some(ca_pem),
        token_file: Some(token),
        ..TransportAuth::default()
    })
}

/// Refuses an X.509 v1 client certificate with the reason: Go accepts them, rustls does not.
pub fn reject_v1_certificates(pem: &[u8], what: &str) -> Result<(), Error> {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem).flatten() {
        if block.label != "CERTIFICATE" {
            continue;
        }
        if let Ok((_, certificate)) = x509_parser::parse_x509_certificate(&block.contents)
            && certificate.version() == x509_parser::x509::X509Version::V1
        {
            return Err(Error::Config(format!(
                "{what} is an X.509 v1 certificate: prometheus-adapter (Go) accepted it, but rustls, the TLS library here, accepts only v3 certificates. Reissue it as v3, e.g. `openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -extfile <(printf 'extendedKeyUsage=clientAuth') -out client.crt`"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_contexts_credentials_and_ca_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "CA").unwrap();
        std::fs::write(dir.path().join("token"), "from-file").unwrap();
        let file = dir.path().join("kubeconfig");
        let inline_ca = base64::engine::general_purpose::STANDARD.encode("INLINE CA");
        std::fs::write(
            &file,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: b\nclusters:\n- name: one\n  cluster: {{server: https://x, certificate-authority: ca.pem}}\n- name: two\n  cluster: {{server: https://y, certificate-authority-data: {inline_ca}}}\ncontexts:\n- name: a\n  context: {{cluster: one, user: u1}}\n- name: b\n  context: {{cluster: one, user: u2}}\n- name: c\n  context: {{cluster: two, user: u1}}\nusers:\n- name: u1\n  user: {{token: abcde12345}}\n- name: u2\n  user: {{tokenFile: token}}\n"
            ),
        )
        .unwrap();
        let auth = from_kubeconfig(&file).unwrap();
        assert_eq!(auth.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert_eq!(auth.token_file, Some(dir.path().join("token")));
        let other = std::fs::read_to_string(&file)
            .unwrap()
            .replace("current-context: b", "current-context: c");
        std::fs::write(&file, other).unwrap();
        let auth = from_kubeconfig(&file).unwrap();
        assert_eq!(auth.ca_pem.as_deref(), Some(&b"INLINE CA"[..]));
        assert_eq!(auth.token.as_deref(), Some("abcde12345"));
    }

    #[test]
    fn prometheus_adapters_own_fixtures() {
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pa-testdata");
        if !dir.is_dir() {
            return;
        }
        let auth = from_kubeconfig(&dir.join("kubeconfig")).unwrap();
        assert_eq!(auth.token.as_deref(), Some("abcde12345"));
        assert!(
            auth.ca_pem
                .is_some_and(|pem| pem.starts_with(b"-----BEGIN CERTIFICATE"))
        );
        assert!(from_kubeconfig(&dir.join("kubeconfig-error")).is_err());
        let v1 = std::fs::read(dir.join("tlscert.crt")).unwrap();
        let error = reject_v1_certificates(&v1, "--prometheus-client-tls-cert-file tlscert.crt")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("X.509 v1") && error.contains("only v3"),
            "{error}"
        );
    }
}
