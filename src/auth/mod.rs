//! Authentication and authorization of incoming requests, as kube-apiserver's delegating
//! authenticator and authorizer do it: bearer tokens through TokenReview, decisions through
//! SubjectAccessReview, both cached; the cluster is reached through the `Reviewer` trait.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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

/// What a request does, in SubjectAccessReview terms (kube-apiserver's `RequestInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attributes {
    /// A request for an API resource.
    Resource {
        /// `get`, `list`, …
        verb: String,
        /// API group.
        group: String,
        /// API version.
        version: String,
        /// Resource, e.g. `pods`.
        resource: String,
        /// Subresource, e.g. the metric name.
        subresource: String,
        /// Namespace, empty when cluster-scoped.
        namespace: String,
        /// Object name; `*` for a selector.
        name: String,
    },
    /// Anything else (discovery documents, `/metrics`, `/openapi/v2`).
    NonResource {
        /// `get`, …
        verb: String,
        /// The URL path.
        path: String,
    },
}

impl Attributes {
    /// Parses a request the way kube-apiserver's `RequestInfoFactory` does for GETs.
    pub fn from_request(method: &str, path: &str) -> Self {
        let verb = method.to_ascii_lowercase();
        let trimmed = path.trim_matches('/');
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        let (group, version, mut rest) = match parts.as_slice() {
            ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
            ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
            _ => {
                return Attributes::NonResource {
                    verb,
                    path: path.to_owned(),
                };
            }
        };
        let mut namespace = "";
        if rest.first() == Some(&"namespaces") && rest.len() > 1 {
            namespace = rest[1];
            // "status" and "finalize" are subresources of the namespace itself.
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        let resource = rest.first().copied().unwrap_or_default();
        let name = rest.get(1).copied().unwrap_or_default();
        let subresource = rest.get(2).copied().unwrap_or_default();
        let verb = match (verb.as_str(), name.is_empty()) {
            ("get" | "head", true) => "list".to_owned(),
            ("get" | "head", false) => "get".to_owned(),
            _ => verb,
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        Attributes::Resource {
            verb,
            group: group.to_owned(),
            version: version.to_owned(),
            resource: decode(resource),
            subresource: decode(subresource),
            namespace: decode(namespace),
            name: decode(name),
        }
    }

    /// Kubernetes' wording of a denial, e.g. `User "bob" cannot get resource "pods/m" in API
    /// group "custom.metrics.k8s.io" in the namespace "ns"`.
    pub fn forbidden_message(&self, user: &str) -> String {
        match self {
            Attributes::Resource {
                verb,
                group,
                resource,
                subresource,
                namespace,
                name,
                ..
            } => {
                let full = if subresource.is_empty() {
                    resource.clone()
                } else {
                    format!("{resource}/{subresource}")
                };
                let subject = if name.is_empty() {
                    full.clone()
                } else {
                    format!("{full} {name:?}")
                };
                let scope = if namespace.is_empty() {
                    "at the cluster scope".to_owned()
                } else {
                    format!("in the namespace {namespace:?}")
                };
                format!(
                    "{subject} is forbidden: User {user:?} cannot {verb} resource {full:?} in API group {group:?} {scope}"
                )
            }
            Attributes::NonResource { verb, path } => {
                format!("forbidden: User {user:?} cannot {verb} path {path:?}")
            }
        }
    }
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

/// The credentials of one request, gathered by the HTTP layer.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// `Authorization: Bearer` token.
    pub bearer: Option<String>,
    /// The connection's verified client certificate.
    pub peer: Option<PeerIdentity>,
    /// Values of the username headers (`X-Remote-User`), in configured order.
    pub remote_user: Option<String>,
    /// Values of the group headers (`X-Remote-Group`), every occurrence.
    pub remote_groups: Vec<String>,
    /// Extra headers (`X-Remote-Extra-Key`), key lowercased and unescaped.
    pub remote_extra: BTreeMap<String, Vec<String>>,
}

/// Request-header (front-proxy) authentication settings.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl Default for RequestHeaderConfig {
    fn default() -> Self {
        Self {
            allowed_names: Vec::new(),
            username_headers: vec!["X-Remote-User".into()],
            group_headers: vec!["X-Remote-Group".into()],
            extra_headers_prefixes: vec!["X-Remote-Extra-".into()],
        }
    }
}

/// Settings of the delegating authenticator and authorizer.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Front-proxy authentication.
    pub request_header: RequestHeaderConfig,
    /// Paths served without authentication or authorization; a trailing `*` matches a prefix.
    pub always_allow_paths: Vec<String>,
    /// How long a TokenReview answer is kept.
    pub token_ttl: Duration,
    /// How long an allowed SubjectAccessReview answer is kept.
    pub allowed_ttl: Duration,
    /// How long a denied SubjectAccessReview answer is kept.
    pub denied_ttl: Duration,
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Proceed (as this user, when one was authenticated).
    Allow(Option<User>),
    /// 401.
    Unauthenticated,
    /// 403, with Kubernetes' message.
    Forbidden(String),
    /// The cluster could not answer (500).
    Unavailable(String),
}

struct Cache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: K, value: V, ttl: Duration) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded by expiry: drop stale entries whenever the map grows large.
        if entries.len() > 10_000 {
            let now = Instant::now();
            entries.retain(|_, (until, _)| *until > now);
        }
        entries.insert(key, (Instant::now() + ttl, value));
    }
}

/// Authenticates and authorizes requests through a `Reviewer`, with caches.
pub struct Gate {
    authenticator: Box<dyn Reviewer>,
    authorizer: Box<dyn Reviewer>,
    config: AuthConfig,
    /// Swappable: the authentication ConfigMap may change it while serving.
    request_header: arc_swap::ArcSwap<RequestHeaderConfig>,
    tokens: Cache<String, Option<User>>,
    decisions: Cache<(String, Vec<String>, Attributes), Decision>,
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
            authenticator,
            authorizer,
            request_header: arc_swap::ArcSwap::from_pointee(config.request_header.clone()),
            config,
            tokens: Cache::new(),
            decisions: Cache::new(),
        }
    }

    /// The request-header settings (the HTTP layer reads these headers).
    pub fn request_header(&self) -> std::sync::Arc<RequestHeaderConfig> {
        self.request_header.load_full()
    }

    /// Replaces the request-header settings (allowed names, header names).
    pub fn set_request_header(&self, config: RequestHeaderConfig) {
        self.request_header.store(std::sync::Arc::new(config));
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

    /// Decides one request. `bearer` is the token of an `Authorization: Bearer` header.
    pub async fn check(&self, method: &str, path: &str, credentials: &Credentials) -> Verdict {
        if self.always_allowed(path) {
            return Verdict::Allow(None);
        }
        // The authenticators in kube-apiserver's order: front-proxy headers, client certificate,
        // bearer token. X-Remote-* headers count only on a front-proxy connection.
        match &credentials.peer {
            Some(PeerIdentity::FrontProxy { common_name })
                if self.front_proxy_allowed(common_name) =>
            {
                if let Some(name) = credentials.remote_user.as_ref().filter(|n| !n.is_empty()) {
                    let mut groups = credentials.remote_groups.clone();
                    groups.push("system:authenticated".into());
                    let user = User {
                        name: name.clone(),
                        uid: String::new(),
                        groups,
                        extra: credentials.remote_extra.clone(),
                    };
                    return self
                        .authorize(user, Attributes::from_request(method, path))
                        .await;
                }
            }
            Some(PeerIdentity::Client {
                common_name,
                organizations,
            }) => {
                let mut groups = organizations.clone();
                groups.push("system:authenticated".into());
                let user = User {
                    name: common_name.clone(),
                    groups,
                    ..User::default()
                };
                return self
                    .authorize(user, Attributes::from_request(method, path))
                    .await;
            }
            _ => {}
        }
        let Some(token) = credentials.bearer.as_deref().filter(|t| !t.is_empty()) else {
            return Verdict::Unauthenticated;
        };
        let user = match self.tokens.get(&token.to_owned()) {
            Some(cached) => cached,
            None => match self.authenticator.review_token(token).await {
                Ok(user) => {
                    self.tokens
                        .put(token.to_owned(), user.clone(), self.config.token_ttl);
                    user
                }
                Err(e) => return Verdict::Unavailable(format!("TokenReview failed: {e}")),
            },
        };
        let Some(user) = user else {
            return Verdict::Unauthenticated;
        };
        self.authorize(user, Attributes::from_request(method, path))
            .await
    }

    /// Authorizes an authenticated user.
    pub async fn authorize(&self, user: User, attributes: Attributes) -> Verdict {
        if user.groups.iter().any(|g| g == "system:masters") {
            return Verdict::Allow(Some(user));
        }
        let key = (user.name.clone(), user.groups.clone(), attributes.clone());
        let decision = match self.decisions.get(&key) {
            Some(cached) => cached,
            None => match self.authorizer.review_access(&user, &attributes).await {
                Ok(decision) => {
                    let ttl = if decision.allowed {
                        self.config.allowed_ttl
                    } else {
                        self.config.denied_ttl
                    };
                    self.decisions.put(key, decision.clone(), ttl);
                    decision
                }
                Err(e) => return Verdict::Unavailable(format!("SubjectAccessReview failed: {e}")),
            },
        };
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
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn resource(
        verb: &str,
        group: &str,
        version: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn attributes_are_parsed_as_kube_apiserver_parses_them() {
        let cm = "custom.metrics.k8s.io";
        assert_eq!(
            Attributes::from_request(
                "GET",
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/%2A/http_requests"
            ),
            resource("get", cm, "v1beta2", "pods", "http_requests", "ns", "*")
        );
        assert_eq!(
            Attributes::from_request("GET", "/apis/custom.metrics.k8s.io/v1beta1/nodes/n1/load"),
            resource("get", cm, "v1beta1", "nodes", "load", "", "n1")
        );
        assert_eq!(
            Attributes::from_request(
                "GET",
                "/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns/metrics/queue"
            ),
            resource("get", cm, "v1beta1", "metrics", "", "ns", "queue")
        );
        assert_eq!(
            Attributes::from_request("GET", "/apis/custom.metrics.k8s.io/v1beta1/namespaces/ns"),
            resource("get", cm, "v1beta1", "namespaces", "", "ns", "ns")
        );
        assert_eq!(
            Attributes::from_request("GET", "/api/v1/namespaces/ns/pods"),
            resource("list", "", "v1", "pods", "", "ns", "")
        );
        for path in [
            "/apis",
            "/apis/custom.metrics.k8s.io",
            "/apis/custom.metrics.k8s.io/v1beta1",
            "/metrics",
            "/openapi/v2",
            "/",
        ] {
            assert_eq!(
                Attributes::from_request("GET", path),
                Attributes::NonResource {
                    verb: "get".into(),
                    path: path.into()
                },
                "{path}"
            );
        }
    }

    #[test]
    fn denials_use_kubernetes_wording() {
        let attributes = Attributes::from_request(
            "GET",
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/m",
        );
        assert_eq!(
            attributes.forbidden_message("bob"),
            r#"pods/m "*" is forbidden: User "bob" cannot get resource "pods/m" in API group "custom.metrics.k8s.io" in the namespace "ns""#
        );
    }

    struct Scripted {
        token_reviews: AtomicUsize,
        access_reviews: AtomicUsize,
    }

    impl Reviewer for Arc<Scripted> {
        fn review_token<'a>(
            &'a self,
            token: &'a str,
        ) -> BoxFuture<'a, Result<Option<User>, ReviewError>> {
            self.token_reviews.fetch_add(1, Ordering::SeqCst);
            let user = match token {
                "alice" => Some(User {
                    name: "alice".into(),
                    ..User::default()
                }),
                "root" => Some(User {
                    name: "root".into(),
                    groups: vec!["system:masters".into()],
                    ..User::default()
                }),
                "bob" => Some(User {
                    name: "bob".into(),
                    ..User::default()
                }),
                _ => None,
            };
            Box::pin(async move { Ok(user) })
        }
        fn review_access<'a>(
            &'a self,
            user: &'a User,
            _: &'a Attributes,
        ) -> BoxFuture<'a, Result<Decision, ReviewError>> {
            self.access_reviews.fetch_add(1, Ordering::SeqCst);
            let allowed = user.name == "alice";
            Box::pin(async move {
                Ok(Decision {
                    allowed,
                    reason: String::new(),
                })
            })
        }
    }

    #[tokio::test]
    async fn tokens_and_decisions_are_cached() {
        let scripted = Arc::new(Scripted {
            token_reviews: AtomicUsize::new(0),
            access_reviews: AtomicUsize::new(0),
        });
        let config = AuthConfig {
            request_header: RequestHeaderConfig {
                allowed_names: vec!["front-proxy-client".into()],
                ..RequestHeaderConfig::default()
            },
            always_allow_paths: vec![
                "/healthz".into(),
                "/readyz".into(),
                "/livez".into(),
                "/debug/*".into(),
            ],
            token_ttl: Duration::from_secs(10),
            allowed_ttl: Duration::from_secs(10),
            denied_ttl: Duration::from_secs(10),
        };
        let gate = Gate::with_reviewers(
            Box::new(scripted.clone()),
            Box::new(scripted.clone()),
            config,
        );
        let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns/pods/*/m";
        let none = Credentials::default();
        let token = |t: &str| Credentials {
            bearer: Some(t.into()),
            ..Credentials::default()
        };
        assert_eq!(
            gate.check("GET", "/healthz", &none).await,
            Verdict::Allow(None)
        );
        assert_eq!(
            gate.check("GET", "/debug/x", &none).await,
            Verdict::Allow(None)
        );
        assert_eq!(
            gate.check("GET", path, &none).await,
            Verdict::Unauthenticated
        );
        assert_eq!(
            gate.check("GET", path, &token("nobody")).await,
            Verdict::Unauthenticated
        );
        assert!(
            matches!(gate.check("GET", path, &token("alice")).await, Verdict::Allow(Some(u)) if u.name == "alice")
        );
        assert!(
            matches!(gate.check("GET", path, &token("bob")).await, Verdict::Forbidden(m) if m.contains("User \"bob\""))
        );
        assert!(
            matches!(
                gate.check("GET", path, &token("root")).await,
                Verdict::Allow(Some(_))
            ),
            "system:masters"
        );
        let (tokens, access) = (
            scripted.token_reviews.load(Ordering::SeqCst),
            scripted.access_reviews.load(Ordering::SeqCst),
        );
        assert_eq!((tokens, access), (4, 2));
        // The same requests again are answered from the caches.
        gate.check("GET", path, &token("alice")).await;
        gate.check("GET", path, &token("bob")).await;
        gate.check("GET", path, &token("nobody")).await;
        assert_eq!(scripted.token_reviews.load(Ordering::SeqCst), tokens);
        assert_eq!(scripted.access_reviews.load(Ordering::SeqCst), access);

        // Front-proxy headers count only with the front-proxy certificate of an allowed name.
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
            matches!(gate.check("GET", path, &proxied(front("front-proxy-client"))).await,
            Verdict::Allow(Some(u)) if u.name == "alice" && u.groups == ["dev", "system:authenticated"])
        );
        assert_eq!(
            gate.check("GET", path, &proxied(None)).await,
            Verdict::Unauthenticated
        );
        assert_eq!(
            gate.check("GET", path, &proxied(front("someone-else")))
                .await,
            Verdict::Unauthenticated
        );
        let client = Credentials {
            peer: Some(PeerIdentity::Client {
                common_name: "alice".into(),
                organizations: vec!["dev".into()],
            }),
            ..Credentials::default()
        };
        assert!(
            matches!(gate.check("GET", path, &client).await, Verdict::Allow(Some(u)) if u.name == "alice")
        );
        // Certificates need no token review.
        assert_eq!(scripted.token_reviews.load(Ordering::SeqCst), tokens);
    }
}
