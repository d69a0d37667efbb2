//! What they may read (SubjectAccessReview, and limits on reviews of both kinds): the flags, their defaults and checks, and what they resolve to.

use std::path::PathBuf;

use clap::Args;

use super::{Problems, at_least_one, duration, list, positive};
use prom_adapter_serve::ClusterSettings;

/// What they may read: SubjectAccessReview, and limits on reviews of both kinds.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Authorization")]
#[serde(default)]
pub struct AuthorizationArgs {
    /// Kubeconfig for SubjectAccessReview [default: the lister's].
    #[arg(long)]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Paths served without authentication or authorization; `*` at the end matches a prefix
    /// [default: /healthz,/readyz,/livez].
    #[arg(long, value_delimiter = ',')]
    pub authorization_always_allow_paths: Option<Vec<String>>,
    /// How long allowed SubjectAccessReview answers are kept [default: 10s].
    #[arg(long)]
    pub authorization_webhook_cache_authorized_ttl: Option<String>,
    /// How long denied SubjectAccessReview answers are kept [default: 10s].
    #[arg(long)]
    pub authorization_webhook_cache_unauthorized_ttl: Option<String>,
    /// How long a SubjectAccessReview may take, waiting for the cluster included [default: 10s].
    #[arg(long)]
    pub authorization_timeout: Option<String>,
    /// TokenReviews and SubjectAccessReviews running at once; more wait, within their deadline [default: 256].
    #[arg(long)]
    pub max_reviews_in_flight: Option<u32>,
    /// Reviews one client may have running at once (TokenReviews per address, SubjectAccessReviews per user); more wait, and past four times as many get 429 [default: 32].
    #[arg(long)]
    pub max_reviews_per_client: Option<u32>,
}

impl AuthorizationArgs {
    /// Into `cluster`: where SubjectAccessReviews go, their caches and deadline, and the limits
    /// on reviews of both kinds.
    pub(super) fn resolve(&self, p: &mut Problems, cluster: &mut ClusterSettings) {
        cluster.authorization_kubeconfig = self.authorization_kubeconfig.clone();
        let auth = &mut cluster.auth;
        auth.always_allow_paths = list(
            &self.authorization_always_allow_paths,
            &["/healthz", "/readyz", "/livez"],
        );
        auth.allowed_ttl = p.take(duration(
            &self.authorization_webhook_cache_authorized_ttl,
            "10s",
            "--authorization-webhook-cache-authorized-ttl",
        ));
        auth.denied_ttl = p.take(duration(
            &self.authorization_webhook_cache_unauthorized_ttl,
            "10s",
            "--authorization-webhook-cache-unauthorized-ttl",
        ));
        auth.authorization_timeout = p.take(positive(
            &self.authorization_timeout,
            "10s",
            "--authorization-timeout",
        ));
        auth.max_reviews_in_flight = p.take(at_least_one(
            self.max_reviews_in_flight,
            256,
            "--max-reviews-in-flight",
        ));
        auth.max_reviews_per_client = p.take(at_least_one(
            self.max_reviews_per_client,
            32,
            "--max-reviews-per-client",
        ));
    }
}
