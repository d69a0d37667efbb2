//! Who is asking (client certificates, the front proxy's headers, TokenReview): the flags, their defaults and checks, and what they resolve to.

use std::path::PathBuf;

use clap::Args;

use super::{Problems, duration, list, positive};
use prom_adapter_serve::{ClusterSettings, auth, server};

/// Who is asking: client certificates, the front proxy's headers, TokenReview.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Authentication")]
#[serde(default)]
pub struct AuthenticationArgs {
    /// Kubeconfig for TokenReview [default: the lister's].
    #[arg(long)]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// Do not read client CAs and request-header settings from the authentication ConfigMap.
    #[arg(long)]
    pub authentication_skip_lookup: bool,
    /// Start even if the authentication ConfigMap cannot be read (it is retried).
    #[arg(long)]
    pub authentication_tolerate_lookup_failure: bool,
    /// How often client CAs are re-read from their files or the ConfigMap [default: 1m].
    #[arg(long)]
    pub authentication_config_refresh_interval: Option<String>,
    /// CA of user client certificates (user = CN, groups = O).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// CA of the front-proxy client certificate kube-apiserver presents.
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Common names the front-proxy certificate may have [default: any the CA signed].
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,
    /// Headers holding the user name [default: X-Remote-User].
    #[arg(long, value_delimiter = ',')]
    pub requestheader_username_headers: Option<Vec<String>>,
    /// Headers holding groups [default: X-Remote-Group].
    #[arg(long, value_delimiter = ',')]
    pub requestheader_group_headers: Option<Vec<String>>,
    /// Prefixes of headers holding extra attributes [default: X-Remote-Extra-].
    #[arg(long, value_delimiter = ',')]
    pub requestheader_extra_headers_prefix: Option<Vec<String>>,
    /// How long TokenReview answers are kept [default: 10s].
    #[arg(long)]
    pub authentication_token_webhook_cache_ttl: Option<String>,
    /// How long a TokenReview may take, waiting for the cluster included [default: 10s].
    #[arg(long)]
    pub authentication_timeout: Option<String>,
}

impl AuthenticationArgs {
    /// Into `cluster`: where TokenReviews go, the front proxy's headers and CAs, and how client
    /// CAs are looked up.
    pub(super) fn resolve(&self, p: &mut Problems, cluster: &mut ClusterSettings) {
        cluster.authentication_kubeconfig = self.authentication_kubeconfig.clone();
        cluster.auth.request_header = auth::RequestHeaderConfig {
            allowed_names: self.requestheader_allowed_names.clone(),
            username_headers: list(&self.requestheader_username_headers, &["X-Remote-User"]),
            group_headers: list(&self.requestheader_group_headers, &["X-Remote-Group"]),
            extra_headers_prefixes: list(
                &self.requestheader_extra_headers_prefix,
                &["X-Remote-Extra-"],
            ),
        };
        cluster.client_cas = server::ClientCas {
            requestheader: self.requestheader_client_ca_file.clone(),
            client: self.client_ca_file.clone(),
        };
        cluster.skip_lookup = self.authentication_skip_lookup;
        cluster.tolerate_lookup_failure = self.authentication_tolerate_lookup_failure;
        cluster.auth_refresh_interval = p.take(positive(
            &self.authentication_config_refresh_interval,
            "1m",
            "--authentication-config-refresh-interval",
        ));
        cluster.auth.token_ttl = p.take(duration(
            &self.authentication_token_webhook_cache_ttl,
            "10s",
            "--authentication-token-webhook-cache-ttl",
        ));
        cluster.auth.authentication_timeout = p.take(positive(
            &self.authentication_timeout,
            "10s",
            "--authentication-timeout",
        ));
    }
}
