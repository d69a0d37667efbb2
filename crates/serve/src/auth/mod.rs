//! Authentication and authorization of incoming requests, as kube-apiserver's delegating
//! authenticator and authorizer do it: bearer tokens through TokenReview, decisions through
//! SubjectAccessReview, both cached and merged while in flight, each with a deadline and a bound
//! per client; the cluster is reached through the `Reviewer` trait.

mod attributes;
mod cache;
mod credentials;
mod limits;
pub mod sources;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

pub use attributes::Attributes;
use cache::{Cache, Flights, Joined};
pub use credentials::{Credentials, bearer_token};
use limits::{ClientKey, ReviewLimits};

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct User {
    /// User name.
    pub name: String,
    /// UID, when known.
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Why the cluster could not answer a review.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ReviewError(pub String);

/// An authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Why, when the authorizer says.
    pub reason: String,
}

/// What authentication and authorization need from the cluster (implemented by `cluster::Cluster`).
pub trait Reviewer: Send + Sync + 'static {
    /// TokenReview: the user a bearer token belongs to, or `None` when it is not valid.
    fn review_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<User>, ReviewError>>;
    /// SubjectAccessReview.
    fn review_access<'a>(
        &'a self,
        user: &'a User,
        attributes: &'a Attributes,
    ) -> BoxFuture<'a, Result<Decision, ReviewError>>;
}

/// Who the TLS client certificate of a connection says the peer is, and which CA vouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// Signed by the request-header (front-proxy) CA: kube-apiserver's aggregator.
    FrontProxy {
        /// The certificate's common name.
        common_name: String,
    },
    /// Signed by the client CA: a user.
    Client {
        /// The certificate's common name (the user).
        common_name: String,
        /// The certificate's organizations (the groups).
        organizations: Vec<String>,
    },
}

/// Request-header (front-proxy) authentication settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaderConfig {
    /// Common names the front-proxy certificate may have; empty allows any the CA signed.
    pub allowed_names: Vec<String>,
    /// Headers holding the user name, first non-empty wins (`X-Remote-User`).
    pub username_headers: Vec<String>,
    /// Headers holding groups (`X-Remote-Group`).
    pub group_headers: Vec<String>,
    /// Prefixes of headers holding extra attributes (`X-Remote-Extra-`).
    pub extra_headers_prefixes: Vec<String>,
}

/// Adds `system:authenticated` to a user's groups unless it is there, as kube-apiserver does.
fn authenticated(groups: &mut Vec<String>) {
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
}

/// Settings of the delegating authenticator and authorizer.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Front-proxy authentication.
    pub request_header: RequestHeaderConfig,
    /// Paths served without authentication or authorization; a trailing `*` matches a prefix.
    pub always_allow_paths: Vec<String>,
    /// How long a TokenReview answer is kept, for valid and invalid tokens alike (as
    /// kube-apiserver's token cache).
    pub token_ttl: Duration,
    /// How long an allowed SubjectAccessReview answer is kept.
    pub allowed_ttl: Duration,
    /// How long a denied SubjectAccessReview answer is kept.
    pub denied_ttl: Duration,
    /// How long a TokenReview may take, waiting for the cluster included.
    pub authentication_timeout: Duration,
    /// How long a SubjectAccessReview may take, waiting for the cluster included.
    pub authorization_timeout: Duration,
    /// Reviews running at once, over every client; past it requests wait, up to the timeout.
    pub max_reviews_in_flight: usize,
    /// Reviews one client may have running at once (TokenReviews per address, SubjectAccessReviews
    /// per user); past it its requests wait, and past a queue of four times as many they get 429.
    pub max_reviews_per_client: usize,
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Proceed (as this user, when one was authenticated).
    Allow(Option<User>),
    /// 401.
    Unauthenticated,
    /// 403, with Kubernetes' wording.
    Forbidden(String),
    /// 503: the cluster did not answer a review in time, or failed; the message says which.
    Unavailable(String),
    /// 429: this client, or every client together, has too many reviews running.
    TooManyRequests(String),
}

/// Which review a flight runs: its deadline and how its failures are named.
#[derive(Debug, Clone, Copy)]
enum ReviewKind {
    Token,
    Access,
}

/// Why a review gave no answer (shared by every request waiting for it, hence `Clone`).
#[derive(Debug, Clone)]
enum ReviewFailure {
    Busy(String),
    Failed(String),
}

impl From<ReviewFailure> for Verdict {
    fn from(failure: ReviewFailure) -> Self {
        match failure {
            ReviewFailure::Busy(message) => Verdict::TooManyRequests(message),
            ReviewFailure::Failed(message) => Verdict::Unavailable(message),
        }
    }
}

/// What requests waiting for a review get when the review's task was lost.
fn lost_review<V>() -> Result<V, ReviewFailure> {
    Err(ReviewFailure::Failed(
        "the review was interrupted before it answered; retry".into(),
    ))
}

/// How many entries each cache holds at most.
const CACHE_CAPACITY: usize = 16_384;

/// A TokenReview question: the SHA-256 of the token, so that caches hold no credentials.
type TokenKey = [u8; 32];

fn token_key(token: &str) -> TokenKey {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// Authenticates and authorizes requests through a `Reviewer`, with caches, merged reviews,
/// deadlines and bounds.
pub struct Gate {
    authenticator: Arc<dyn Reviewer>,
    authorizer: Arc<dyn Reviewer>,
    config: AuthConfig,
    /// Swappable: the authentication ConfigMap may change it while serving.
    request_header: arc_swap::ArcSwap<RequestHeaderConfig>,
    tokens: Arc<Cache<TokenKey, Option<User>>>,
    token_flights: Flights<TokenKey, Result<Option<User>, ReviewFailure>>,
    decisions: Arc<Cache<(User, Attributes), Decision>>,
    decision_flights: Flights<(User, Attributes), Result<Decision, ReviewFailure>>,
    limits: ReviewLimits,
}

impl Gate {
    /// A gate asking `authenticator` for TokenReviews and `authorizer` for SubjectAccessReviews
    /// (`--authentication-kubeconfig` and `--authorization-kubeconfig` may name different clusters).
    pub fn with_reviewers(
        authenticator: Box<dyn Reviewer>,
        authorizer: Box<dyn Reviewer>,
        config: AuthConfig,
    ) -> Self {
        Self {
            authenticator: Arc::from(authenticator),
            authorizer: Arc::from(authorizer),
            request_header: arc_swap::ArcSwap::from_pointee(config.request_header.clone()),
            limits: ReviewLimits::new(config.max_reviews_per_client, config.max_reviews_in_flight),
            config,
            tokens: Arc::new(Cache::new(CACHE_CAPACITY)),
            token_flights: Flights::new(lost_review),
            decisions: Arc::new(Cache::new(CACHE_CAPACITY)),
            decision_flights: Flights::new(lost_review),
        }
    }

    /// The request-header settings (the HTTP layer reads these headers).
    pub fn request_header(&self) -> Arc<RequestHeaderConfig> {
        self.request_header.load_full()
    }

    /// Replaces the request-header settings (allowed names, header names).
    pub fn set_request_header(&self, config: RequestHeaderConfig) {
        self.request_header.store(Arc::new(config));
    }

    fn front_proxy_allowed(&self, common_name: &str) -> bool {
        let config = self.request_header.load();
        config.allowed_names.is_empty() || config.allowed_names.iter().any(|n| n == common_name)
    }

    /// Whether a path skips authentication and authorization.
    pub fn always_allowed(&self, path: &str) -> bool {
        self.config
            .always_allow_paths
            .iter()
            .any(|allowed| match allowed.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == allowed,
            })
    }

    /// Who the credentials stand for, in kube-apiserver's order of authenticators: front-proxy
    /// headers, client certificate, bearer token. X-Remote-* headers count only on a front-proxy
    /// connection. The error is the verdict to answer with.
    pub async fn authenticate(&self, credentials: &Credentials) -> Result<User, Verdict> {
        match &credentials.peer {
            Some(PeerIdentity::FrontProxy { common_name })
                if self.front_proxy_allowed(common_name) =>
            {
                if let Some(name) = credentials.remote_user.as_ref().filter(|n| !n.is_empty()) {
                    let mut groups = credentials.remote_groups.clone();
                    authenticated(&mut groups);
                    return Ok(User {
                        name: name.clone(),
                        uid: String::new(),
                        groups,
                        extra: credentials.remote_extra.clone(),
                    });
                }
            }
            // kube-apiserver's x509 authenticator skips a certificate without a common name.
            Some(PeerIdentity::Client {
                common_name,
                organizations,
            }) if !common_name.is_empty() => {
                let mut groups = organizations.clone();
                authenticated(&mut groups);
                return Ok(User {
                    name: common_name.clone(),
                    groups,
                    ..User::default()
                });
            }
            _ => {}
        }
        let Some(token) = credentials.bearer.as_deref().filter(|t| !t.is_empty()) else {
            return Err(Verdict::Unauthenticated);
        };
        let key = token_key(token);
        let user = match self.tokens.get(&key) {
            Some(cached) => cached,
            None => self
                .review_token(key, token, credentials.source)
                .await
                .map_err(Verdict::from)?,
        };
        user.ok_or(Verdict::Unauthenticated)
    }

    async fn review_token(
        &self,
        key: TokenKey,
        token: &str,
        source: Option<IpAddr>,
    ) -> Result<Option<User>, ReviewFailure> {
        let reviewer = self.authenticator.clone();
        let token = token.to_owned();
        let (cache, ttl) = (self.tokens.clone(), self.config.token_ttl);
        self.merged_review(
            &self.token_flights,
            key,
            source.map(ClientKey::Address),
            ReviewKind::Token,
            Box::pin(async move { reviewer.review_token(&token).await }),
            move |user| cache.put(key, user.clone(), ttl),
        )
        .await
    }

    /// Runs `review` once for every request asking `key` at the same time: the first waits for
    /// a place for `client` (see `limits`), the wait and the review share one deadline of its
    /// kind, `keep` stores the answer before the flight ends, and everyone gets the same answer
    /// or failure.
    async fn merged_review<K, V>(
        &self,
        flights: &Flights<K, Result<V, ReviewFailure>>,
        key: K,
        client: Option<ClientKey>,
        kind: ReviewKind,
        review: BoxFuture<'static, Result<V, ReviewError>>,
        keep: impl FnOnce(&V) + Send + 'static,
    ) -> Result<V, ReviewFailure>
    where
        K: std::hash::Hash + Eq + Clone + Send + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if let Joined::Existing(flight) = flights.join(&key) {
            return flight.await;
        }
        let timeout = match kind {
            ReviewKind::Token => self.config.authentication_timeout,
            ReviewKind::Access => self.config.authorization_timeout,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let place = self
            .limits
            .acquire(client.as_ref(), deadline)
            .await
            .map_err(|refused| ReviewFailure::Busy(refused.0))?;
        let (area, name) = match kind {
            ReviewKind::Token => ("authentication", "TokenReview"),
            ReviewKind::Access => ("authorization", "SubjectAccessReview"),
        };
        let flight = async move {
            let _place = place;
            match tokio::time::timeout_at(deadline, review).await {
                Ok(Ok(answer)) => {
                    keep(&answer);
                    Ok(answer)
                }
                Ok(Err(e)) => Err(ReviewFailure::Failed(format!(
                    "{area} is unavailable: the {name} failed: {e}"
                ))),
                Err(_) => Err(ReviewFailure::Failed(format!(
                    "{area} is unavailable: the {name} got no answer within {timeout:?}"
                ))),
            }
        };
        flights.start(key, flight).await
    }

    /// Authorizes an authenticated user to do what `attributes` say.
    pub async fn authorize(&self, user: User, attributes: Attributes) -> Verdict {
        if user.groups.iter().any(|g| g == "system:masters") {
            return Verdict::Allow(Some(user));
        }
        let key = (user, attributes);
        let decision = match self.decisions.get(&key) {
            Some(cached) => cached,
            None => match self.review_access(key.clone()).await {
                Ok(decision) => decision,
                Err(failure) => return failure.into(),
            },
        };
        let (user, attributes) = key;
        if decision.allowed {
            Verdict::Allow(Some(user))
        } else {
            let mut message = attributes.forbidden_message(&user.name);
            if !decision.reason.is_empty() {
                message = format!("{message}: {}", decision.reason);
            }
            Verdict::Forbidden(message)
        }
    }

    async fn review_access(&self, key: (User, Attributes)) -> Result<Decision, ReviewFailure> {
        let reviewer = self.authorizer.clone();
        let question = key.clone();
        let cache = self.decisions.clone();
        let (allowed_ttl, denied_ttl) = (self.config.allowed_ttl, self.config.denied_ttl);
        let stored = key.clone();
        let client = ClientKey::User(key.0.name.clone());
        self.merged_review(
            &self.decision_flights,
            key,
            Some(client),
            ReviewKind::Access,
            Box::pin(async move {
                let (user, attributes) = &question;
                reviewer.review_access(user, attributes).await
            }),
            move |decision| {
                let ttl = if decision.allowed {
                    allowed_ttl
                } else {
                    denied_ttl
                };
                cache.put(stored, decision.clone(), ttl);
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A cluster that knows three tokens, allows only alice, and takes `delay` to answer.
    struct Scripted {
        token_reviews: AtomicUsize,
        access_reviews: AtomicUsize,
        delay: Duration,
    }

    impl Scripted {
        fn new(delay: Duration) -> Arc<Self> {
            Arc::new(Self {
                token_reviews: AtomicUsize::new(0),
                access_reviews: AtomicUsize::new(0),
                delay,
            })
        }

        fn counts(&self) -> (usize, usize) {
            (
                self.token_reviews.load(Ordering::SeqCst),
                self.access_reviews.load(Ordering::SeqCst),
            )
        }
    }

    impl Reviewer for Arc<Scripted> {
        fn review_token<'a>(
            &'a self,
            token: &'a str,
        ) -> BoxFuture<'a, Result<Option<User>, ReviewError>> {
            self.token_reviews.fetch_add(1, Ordering::SeqCst);
            let user = match token {
                "alice" | "bob" => Some(User {
                    name: token.into(),
                    ..User::default()
                }),
                "root" => Some(User {
                    name: "root".into(),
                    groups: vec!["system:masters".into()],
                    ..User::default()
                }),
                _ => None,
            };
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                Ok(user)
            })
        }
        fn review_access<'a>(
            &'a self,
            user: &'a User,
            _: &'a Attributes,
        ) -> BoxFuture<'a, Result<Decision, ReviewError>> {
            self.access_reviews.fetch_add(1, Ordering::SeqCst);
            let allowed = user.name == "alice";
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                Ok(Decision {
                    allowed,
                    reason: String::new(),
                })
            })
        }
    }

    fn gate(scripted: &Arc<Scripted>, config: AuthConfig) -> Arc<Gate> {
        Arc::new(Gate::with_reviewers(
            Box::new(scripted.clone()),
            Box::new(scripted.clone()),
            config,
        ))
    }

    /// kube-apiserver's delegating defaults (10 s caches and webhook timeouts), as serve resolves
    /// them, with the front proxy's name.
    fn config() -> AuthConfig {
        AuthConfig {
            request_header: RequestHeaderConfig {
                allowed_names: vec!["front-proxy-client".into()],
                username_headers: vec!["X-Remote-User".into()],
                group_headers: vec!["X-Remote-Group".into()],
                extra_headers_prefixes: vec!["X-Remote-Extra-".into()],
            },
            always_allow_paths: vec!["/healthz".into(), "/readyz".into(), "/livez".into()],
            token_ttl: Duration::from_secs(10),
            allowed_ttl: Duration::from_secs(10),
            denied_ttl: Duration::from_secs(10),
            authentication_timeout: Duration::from_secs(10),
            authorization_timeout: Duration::from_secs(10),
            max_reviews_in_flight: 256,
            max_reviews_per_client: 32,
        }
    }

    const PATH: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/m";

    fn token(t: &str) -> Credentials {
        Credentials {
            bearer: Some(t.into()),
            source: Some(IpAddr::from([127, 0, 0, 1])),
            ..Credentials::default()
        }
    }

    async fn check(gate: &Gate, credentials: &Credentials) -> Verdict {
        match gate.authenticate(credentials).await {
            Ok(user) => {
                let attributes = Attributes::from_request("GET", PATH).unwrap();
                gate.authorize(user, attributes).await
            }
            Err(verdict) => verdict,
        }
    }

    #[tokio::test]
    async fn tokens_and_decisions_are_cached() {
        let scripted = Scripted::new(Duration::ZERO);
        let gate = gate(&scripted, config());
        assert!(gate.always_allowed("/healthz"));
        assert!(!gate.always_allowed(PATH));
        assert_eq!(
            check(&gate, &Credentials::default()).await,
            Verdict::Unauthenticated
        );
        assert_eq!(
            check(&gate, &token("nobody")).await,
            Verdict::Unauthenticated
        );
        assert!(
            matches!(check(&gate, &token("alice")).await, Verdict::Allow(Some(u)) if u.name == "alice")
        );
        assert!(
            matches!(check(&gate, &token("bob")).await, Verdict::Forbidden(m) if m.contains("User \"bob\""))
        );
        assert!(
            matches!(check(&gate, &token("root")).await, Verdict::Allow(Some(_))),
            "system:masters"
        );
        assert_eq!(scripted.counts(), (4, 2));
        // The same requests again are answered from the caches, invalid tokens included.
        for t in ["alice", "bob", "nobody"] {
            check(&gate, &token(t)).await;
        }
        assert_eq!(scripted.counts(), (4, 2));
    }

    #[tokio::test]
    async fn certificates_and_front_proxy_headers() {
        let scripted = Scripted::new(Duration::ZERO);
        let gate = gate(&scripted, config());
        let proxied = |peer: Option<PeerIdentity>| Credentials {
            peer,
            remote_user: Some("alice".into()),
            remote_groups: vec!["dev".into()],
            ..Credentials::default()
        };
        let front = |cn: &str| {
            Some(PeerIdentity::FrontProxy {
                common_name: cn.into(),
            })
        };
        assert!(
            matches!(check(&gate, &proxied(front("front-proxy-client"))).await,
            Verdict::Allow(Some(u)) if u.name == "alice" && u.groups == ["dev", "system:authenticated"])
        );
        assert_eq!(check(&gate, &proxied(None)).await, Verdict::Unauthenticated);
        assert_eq!(
            check(&gate, &proxied(front("someone-else"))).await,
            Verdict::Unauthenticated
        );
        let client = |cn: &str| Credentials {
            peer: Some(PeerIdentity::Client {
                common_name: cn.into(),
                organizations: vec!["system:masters".into()],
            }),
            ..Credentials::default()
        };
        assert!(
            matches!(check(&gate, &client("alice")).await, Verdict::Allow(Some(u)) if u.name == "alice")
        );
        // kube-apiserver does not take a certificate without a common name as anyone, whatever
        // its organizations say.
        assert_eq!(check(&gate, &client("")).await, Verdict::Unauthenticated);
        assert_eq!(scripted.counts().0, 0, "certificates need no token review");
    }

    #[tokio::test]
    async fn identical_cold_requests_share_one_review_of_each_kind() {
        let scripted = Scripted::new(Duration::from_millis(50));
        let gate = gate(&scripted, config());
        let requests: Vec<_> = (0..50)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { check(&gate, &token("alice")).await })
            })
            .collect();
        for request in requests {
            assert!(matches!(request.await.unwrap(), Verdict::Allow(Some(_))));
        }
        assert_eq!(scripted.counts(), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_review_that_hangs_times_out_and_says_which() {
        let scripted = Scripted::new(Duration::from_secs(45));
        let gate = gate(
            &scripted,
            AuthConfig {
                authentication_timeout: Duration::from_secs(2),
                ..config()
            },
        );
        let started = tokio::time::Instant::now();
        let verdict = check(&gate, &token("alice")).await;
        assert!(
            matches!(&verdict, Verdict::Unavailable(m) if m.starts_with("authentication is unavailable") && m.contains("2s")),
            "{verdict:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    // The clock is tokio's paused one: the times below are the order in which reviews ran, not
    // how fast this machine is.
    #[tokio::test(start_paused = true)]
    async fn one_client_cannot_take_every_review() {
        let scripted = Scripted::new(Duration::from_millis(200));
        let gate = gate(
            &scripted,
            AuthConfig {
                max_reviews_per_client: 2,
                ..config()
            },
        );
        let started = tokio::time::Instant::now();
        let flood: Vec<_> = (0..6)
            .map(|i| {
                let gate = gate.clone();
                tokio::spawn(async move { check(&gate, &token(&format!("random-{i}"))).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Another client gets its reviews at once (two of 200 ms each).
        let other = Credentials {
            source: Some(IpAddr::from([10, 0, 0, 2])),
            ..token("alice")
        };
        assert!(matches!(check(&gate, &other).await, Verdict::Allow(_)));
        assert!(started.elapsed() < Duration::from_millis(500));
        // The flooding client's reviews ran two at a time: three rounds.
        for request in flood {
            assert_eq!(request.await.unwrap(), Verdict::Unauthenticated);
        }
        assert!(started.elapsed() >= Duration::from_millis(600));
    }
}
