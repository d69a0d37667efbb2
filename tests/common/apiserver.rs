//! A small, faithful stand-in for kube-apiserver: legacy discovery as a 1.30+ cluster serves it,
//! list endpoints with label selectors (full or metadata-only, by `Accept`), watches from a
//! resource version (ADDED, MODIFIED and DELETED as objects enter, change in and leave a
//! selection; 410 Expired before the compacted version), single-object GET and JSON merge-patch
//! of labels and annotations (`kubectl annotate`), bearer-token authentication, and `Status`
//! errors with kube-apiserver's codes. Resources (CRDs) and objects can be added, relabelled and
//! deleted while it runs, and watches broken.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use prom_adapter_core::promql::LabelSelector;
use serde_json::{Value, json};

/// The token clients must present.
pub const TOKEN: &str = "stand-in-token";

/// A resource the stand-in serves.
#[derive(Clone, Debug)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
}

impl Resource {
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        Resource {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: Vec::new(),
        }
    }
}

/// An object: which resource, where, its name and labels.
#[derive(Clone, Debug)]
pub struct Object {
    pub group: String,
    pub plural: String,
    pub namespace: Option<String>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Fields a fieldSelector can choose by, e.g. `status.phase` of a pod.
    pub fields: BTreeMap<String, String>,
    /// Its `resourceVersion`: the revision of its last change.
    pub revision: u64,
}

/// One change to an object, for watches: what it was and what it became (`None`: not yet, or no
/// longer).
#[derive(Clone)]
struct Change {
    revision: u64,
    before: Option<Object>,
    after: Option<Object>,
}

/// What one list or watch selects, and how it renders an object.
#[derive(Clone)]
struct Selection {
    group: String,
    plural: String,
    namespace: Option<String>,
    selector: LabelSelector,
    fields: Vec<(String, bool, String)>,
    metadata_only: bool,
}

impl Selection {
    fn selects(&self, o: &Object) -> bool {
        o.group == self.group
            && o.plural == self.plural
            && (self.namespace.is_none() || o.namespace == self.namespace)
            && self.selector.matches(&o.labels)
            && self.fields.iter().all(|(field, equal, value)| {
                let actual = match field.as_str() {
                    "metadata.name" => Some(o.name.as_str()),
                    "metadata.namespace" => o.namespace.as_deref(),
                    other => o.fields.get(other).map(String::as_str),
                };
                (actual == Some(value.as_str())) == *equal
            })
    }

    fn render(&self, o: &Object) -> Value {
        let metadata = json!({"name": o.name, "namespace": o.namespace, "labels": o.labels,
            "annotations": o.annotations, "resourceVersion": o.revision.to_string()});
        if self.metadata_only {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata})
        } else {
            json!({"metadata": metadata})
        }
    }
}

#[derive(Default)]
struct State {
    resources: Vec<Resource>,
    objects: Vec<Object>,
    /// Bearer tokens TokenReview accepts: token → (user, groups).
    users: BTreeMap<String, (String, Vec<String>)>,
    /// Users SubjectAccessReview denies (everyone else is allowed).
    denied: Vec<String>,
    /// Data of kube-system/extension-apiserver-authentication, when it exists.
    authentication: Option<BTreeMap<String, String>>,
    /// Requests seen, as "METHOD path?query", for assertions.
    requests: Vec<String>,
    /// Serve only the legacy discovery documents, like a cluster older than 1.26.
    legacy_discovery_only: bool,
    /// How long TokenReviews and SubjectAccessReviews take to answer.
    review_delay: std::time::Duration,
    /// TokenReviews of tokens it does not know wait until released (a webhook token
    /// authenticator behind kube-apiserver that hangs on what it has not cached).
    holding_unknown_tokens: bool,
    /// TokenReviews of unknown tokens being answered now, and the most there were at once.
    unknown_in_flight: usize,
    most_unknown_in_flight: usize,
    /// Every TokenReview's token, with how many reviews of unknown tokens were in flight when it
    /// arrived.
    token_reviews: Vec<(String, usize)>,
    /// Bodies of the SubjectAccessReviews received.
    access_reviews: Vec<Value>,
    /// The revision of the last change (what lists report as their `resourceVersion`).
    revision: u64,
    /// Every change, for watches.
    changes: Vec<Change>,
    /// Watches from a revision before this one get 410 Expired.
    compacted: u64,
    /// Bumped to end every open watch.
    watch_epoch: u64,
    /// New watches fail with 500 while set.
    refusing_watches: bool,
    /// Woken on every change and every broken watch.
    changed: Arc<tokio::sync::Notify>,
}

impl State {
    /// Records a change to the object at `at` (`None`: a deletion of `before`), made by `change`,
    /// under a new revision.
    fn change(
        &mut self,
        at: Option<usize>,
        before: Option<Object>,
        change: impl FnOnce(&mut Object),
    ) {
        self.revision += 1;
        let revision = self.revision;
        let after = at.map(|at| {
            let object = &mut self.objects[at];
            change(object);
            object.revision = revision;
            object.clone()
        });
        self.changes.push(Change {
            revision,
            before,
            after,
        });
        self.changed.notify_waiters();
    }

    fn position(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<usize> {
        self.objects.iter().position(|o| {
            o.group == group
                && o.plural == plural
                && o.namespace.as_deref() == namespace
                && o.name == name
        })
    }
}

/// A running stand-in; stops when dropped.
pub struct ApiServer {
    pub port: u16,
    pub kubeconfig: PathBuf,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

impl ApiServer {
    /// Starts with the built-in resources of a cluster (core, apps, networking.k8s.io) and no
    /// objects; writes a kubeconfig that trusts its certificate and carries the token.
    pub fn start(dir: &Path) -> Self {
        prom_adapter_serve::server::install_crypto_provider();
        let pki = dir.join("apiserver-pki");
        std::fs::create_dir_all(&pki).unwrap();
        super::write_pki(&pki);
        let state = Arc::new(Mutex::new(State {
            resources: builtin_resources(),
            revision: 1,
            ..State::default()
        }));
        let port = super::free_port();
        let tls = server_tls(&pki);
        let shared = state.clone();
        let handle = super::serve_https_on_a_thread(port, tls, move |app| {
            app.app_data(web::Data::new(shared.clone()))
                .default_service(web::to(handle));
        });
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {}\nusers:\n- name: adapter\n  user:\n    token: {TOKEN}\ncontexts:\n- name: stand-in\n  context: {{cluster: stand-in, user: adapter}}\ncurrent-context: stand-in\n",
                pki.join("ca.crt").display()
            ),
        )
        .unwrap();
        let server = ApiServer {
            port,
            kubeconfig,
            state,
            handle,
        };
        let deadline = std::time::Instant::now() + super::PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "stand-in did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        server
    }

    /// Stops answering aggregated discovery (`/api` and `/apis` then always give the legacy
    /// documents), as a cluster before 1.26 does.
    pub fn serve_legacy_discovery_only(&self) {
        self.state.lock().unwrap().legacy_discovery_only = true;
    }

    /// Serves one more resource, as installing a CRD does.
    pub fn add_resource(&self, resource: Resource) {
        self.state.lock().unwrap().resources.push(resource);
    }

    /// Creates an object.
    pub fn add_object(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
        labels: &[(&str, &str)],
    ) {
        let mut state = self.state.lock().unwrap();
        state.objects.push(Object {
            group: group.into(),
            plural: plural.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            // Pods are created running, as a scheduled pod soon is.
            fields: if plural == "pods" && group.is_empty() {
                BTreeMap::from([("status.phase".to_owned(), "Running".to_owned())])
            } else {
                BTreeMap::new()
            },
            revision: 0,
        });
        let at = state.objects.len() - 1;
        state.change(Some(at), None, |_| {});
    }

    /// Replaces an object's labels (`kubectl label --overwrite`).
    pub fn set_labels(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
        labels: &[(&str, &str)],
    ) {
        let mut state = self.state.lock().unwrap();
        let at = state
            .position(group, plural, namespace, name)
            .expect("the object exists");
        let before = state.objects[at].clone();
        state.change(Some(at), Some(before), |o| {
            o.labels = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        });
    }

    /// Deletes an object.
    pub fn delete_object(&self, group: &str, plural: &str, namespace: Option<&str>, name: &str) {
        let mut state = self.state.lock().unwrap();
        let at = state
            .position(group, plural, namespace, name)
            .expect("the object exists");
        let before = state.objects.remove(at);
        state.change(None, Some(before), |_| {});
    }

    /// Ends every open watch; with `expire`, watches from before now get 410 Expired, so that a
    /// client must list again (as after etcd compaction); with `refuse`, new watches fail with
    /// 500 until `accept_watches`.
    pub fn break_watches(&self, expire: bool, refuse: bool) {
        let mut state = self.state.lock().unwrap();
        state.watch_epoch += 1;
        if expire {
            state.compacted = state.revision;
        }
        state.refusing_watches = refuse;
        state.changed.notify_waiters();
    }

    /// Accepts watches again after `break_watches(_, true)`.
    pub fn accept_watches(&self) {
        self.state.lock().unwrap().refusing_watches = false;
    }

    /// Sets an object's annotations (as a release manager would have).
    pub fn annotate(&self, group: &str, plural: &str, name: &str, annotations: &[(&str, &str)]) {
        let mut state = self.state.lock().unwrap();
        let at = (state.objects.iter())
            .position(|o| o.group == group && o.plural == plural && o.name == name)
            .expect("the object exists");
        let before = state.objects[at].clone();
        state.change(Some(at), Some(before), |object| {
            for (k, v) in annotations {
                object.annotations.insert(k.to_string(), v.to_string());
            }
        });
    }

    /// An object's (labels, annotations), if it exists.
    pub fn metadata(
        &self,
        group: &str,
        plural: &str,
        name: &str,
    ) -> Option<(BTreeMap<String, String>, BTreeMap<String, String>)> {
        let state = self.state.lock().unwrap();
        state
            .objects
            .iter()
            .find(|o| o.group == group && o.plural == plural && o.name == name)
            .map(|o| (o.labels.clone(), o.annotations.clone()))
    }

    /// Sets a pod's `status.phase` (e.g. `Pending`, `Succeeded`).
    pub fn set_pod_phase(&self, namespace: &str, name: &str, phase: &str) {
        let mut state = self.state.lock().unwrap();
        let at = state
            .position("", "pods", Some(namespace), name)
            .expect("the pod exists");
        let before = state.objects[at].clone();
        state.change(Some(at), Some(before), |pod| {
            pod.fields.insert("status.phase".into(), phase.into());
        });
    }

    /// Makes TokenReview accept `token` as `user` in `groups`.
    pub fn add_user(&self, token: &str, user: &str, groups: &[&str]) {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        self.state
            .lock()
            .unwrap()
            .users
            .insert(token.into(), (user.into(), groups));
    }

    /// Publishes (or replaces) kube-system/extension-apiserver-authentication, as kube-apiserver
    /// does: CA bundles as PEM text and lists as JSON arrays.
    pub fn set_authentication_configmap(&self, data: &[(&str, &str)]) {
        self.state.lock().unwrap().authentication = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }

    /// Makes TokenReviews and SubjectAccessReviews take `delay` (a slow or hung API server).
    pub fn set_review_delay(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().review_delay = delay;
    }

    /// Holds TokenReviews of tokens it does not know (answering none) until `release_held_reviews`.
    pub fn hold_unknown_token_reviews(&self) {
        self.state.lock().unwrap().holding_unknown_tokens = true;
    }

    /// Answers the held TokenReviews, and holds no more.
    pub fn release_held_reviews(&self) {
        self.state.lock().unwrap().holding_unknown_tokens = false;
    }

    /// The most TokenReviews of unknown tokens it has had in flight at once.
    pub fn most_unknown_token_reviews_in_flight(&self) -> usize {
        self.state.lock().unwrap().most_unknown_in_flight
    }

    /// TokenReviews of unknown tokens in flight now.
    pub fn unknown_token_reviews_in_flight(&self) -> usize {
        self.state.lock().unwrap().unknown_in_flight
    }

    /// The TokenReviews of `token` so far, each as how many reviews of unknown tokens were in
    /// flight when it arrived.
    pub fn reviews_of(&self, token: &str) -> Vec<usize> {
        self.state
            .lock()
            .unwrap()
            .token_reviews
            .iter()
            .filter(|(t, _)| t == token)
            .map(|(_, in_flight)| *in_flight)
            .collect()
    }

    /// Makes SubjectAccessReview deny everything to `user`.
    pub fn deny(&self, user: &str) {
        self.state.lock().unwrap().denied.push(user.into());
    }

    /// The SubjectAccessReviews received so far, as sent.
    pub fn access_reviews(&self) -> Vec<Value> {
        self.state.lock().unwrap().access_reviews.clone()
    }

    /// How many requests went to a path.
    pub fn count(&self, method_and_path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.starts_with(method_and_path))
            .count()
    }

    /// Requests seen so far ("GET /path?query").
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl ApiServer {
    /// Stops serving (as a kube-apiserver that went down), and waits until it has.
    pub fn stop(&self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)))
            .join()
            .unwrap();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)));
    }
}

fn server_tls(pki: &Path) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(pki.join("server.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.join("server.key")).unwrap();
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap()
}

fn builtin_resources() -> Vec<Resource> {
    let mut pods = Resource::new("", "v1", "Pod", "pods", true);
    pods.short_names = vec!["po".into()];
    let mut services = Resource::new("", "v1", "Service", "services", true);
    services.short_names = vec!["svc".into()];
    vec![
        pods,
        services,
        Resource::new("", "v1", "Namespace", "namespaces", false),
        Resource::new("", "v1", "Node", "nodes", false),
        Resource::new("apps", "v1", "Deployment", "deployments", true),
        Resource::new("networking.k8s.io", "v1", "Ingress", "ingresses", true),
        Resource::new(
            "authentication.k8s.io",
            "v1",
            "TokenReview",
            "tokenreviews",
            false,
        ),
        Resource::new(
            "authorization.k8s.io",
            "v1",
            "SubjectAccessReview",
            "subjectaccessreviews",
            false,
        ),
    ]
}

fn status(code: u16, reason: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).json(json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    }))
}

fn resource_list(group_version: &str, resources: &[&Resource]) -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": resources.iter().flat_map(|r| {
            let main = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": r.short_names, "storageVersionHash": "x"});
            let status = json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"]});
            [main, status]
        }).collect::<Vec<_>>(),
    })
}

/// A fieldSelector as kube-apiserver reads it: `field=value`, `field==value`, `field!=value`.
/// (kube-apiserver also rejects fields a resource does not index; the stand-in does not.)
fn parse_field_selector(text: &str) -> Result<Vec<(String, bool, String)>, String> {
    text.split(',')
        .filter(|t| !t.is_empty())
        .map(|term| {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                ));
            };
            Ok((field.to_owned(), equal, value.to_owned()))
        })
        .collect()
}

/// Whether an Accept header asks for aggregated discovery v2, the way kube-apiserver
/// negotiates it: a media type with `g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`.
fn accepts_aggregated_discovery(accept: &str) -> bool {
    accept.split(',').any(|media_type| {
        let params: Vec<&str> = media_type.split(';').map(str::trim).collect();
        params.first() == Some(&"application/json")
            && params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

/// `/api` (core only) or `/apis` (every other group) as an APIGroupDiscoveryList, the shape a
/// 1.30+ kube-apiserver serves: one item per group, versions newest first, each resource with
/// its scope, kind and subresources.
fn aggregated_discovery(resources: &[Resource], core: bool) -> HttpResponse {
    let mut groups: BTreeMap<&str, BTreeMap<&str, Vec<&Resource>>> = BTreeMap::new();
    for r in resources.iter().filter(|r| r.group.is_empty() == core) {
        groups
            .entry(&r.group)
            .or_default()
            .entry(&r.version)
            .or_default()
            .push(r);
    }
    let items: Vec<Value> = groups
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .rev()
                .map(|(version, resources)| {
                    let resources: Vec<Value> = resources
                        .iter()
                        .map(|r| {
                            let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
                            json!({"resource": r.plural, "responseKind": kind, "singularResource": r.singular,
                                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                                "shortNames": r.short_names,
                                "subresources": [{"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}]})
                        })
                        .collect();
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    HttpResponse::Ok()
        .content_type("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
        .json(
            json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}),
        )
}

/// TokenReview and SubjectAccessReview, as kube-apiserver answers them.
fn review(state: &State, path: &str, body: &[u8]) -> Option<HttpResponse> {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match path {
        "/apis/authentication.k8s.io/v1/tokenreviews" => {
            let token = request["spec"]["token"].as_str().unwrap_or_default();
            let status = match state.users.get(token) {
                Some((user, groups)) => {
                    let mut groups = groups.clone();
                    groups.push("system:authenticated".into());
                    json!({"authenticated": true, "user": {"username": user, "uid": format!("uid-{user}"), "groups": groups}})
                }
                None => {
                    json!({"authenticated": false, "user": {}, "error": "invalid bearer token"})
                }
            };
            Some(HttpResponse::Created().json(json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": null}, "spec": request["spec"], "status": status})))
        }
        "/apis/authorization.k8s.io/v1/subjectaccessreviews" => {
            let user = request["spec"]["user"].as_str().unwrap_or_default();
            let allowed = !state.denied.iter().any(|d| d == user);
            let status = if allowed {
                json!({"allowed": true, "reason": "allowed by the stand-in"})
            } else {
                json!({"allowed": false, "reason": "no RBAC policy matched"})
            };
            Some(HttpResponse::Created().json(json!({"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": null}, "spec": request["spec"], "status": status})))
        }
        _ => None,
    }
}

/// A TokenReview of an unknown token being answered: counted until its handler ends. actix keeps a
/// handler running after its client hangs up, so a review the adapter gave up on stays counted
/// until it is released.
struct UnknownTokenReview(Arc<Mutex<State>>);

impl UnknownTokenReview {
    fn begin(state: &mut State, shared: &Arc<Mutex<State>>) -> Self {
        state.unknown_in_flight += 1;
        state.most_unknown_in_flight = state.most_unknown_in_flight.max(state.unknown_in_flight);
        UnknownTokenReview(shared.clone())
    }
}

impl Drop for UnknownTokenReview {
    fn drop(&mut self) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        state.unknown_in_flight -= 1;
    }
}

async fn handle(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    // Reviews may be slow (a loaded or hung API server): they answer after the lock is released.
    let shared = state.get_ref().clone();
    let reviewed = {
        let mut state = state.lock().unwrap();
        state.requests.push(format!(
            "{} {}?{}",
            request.method(),
            request.path(),
            request.query_string()
        ));
        let authorized = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {TOKEN}"));
        if !authorized {
            return status(401, "Unauthorized", "Unauthorized");
        }
        if request.path() == "/apis/authorization.k8s.io/v1/subjectaccessreviews" {
            let review = serde_json::from_slice(&body).unwrap_or(Value::Null);
            state.access_reviews.push(review);
        }
        let mut unknown_token = false;
        if request.path() == "/apis/authentication.k8s.io/v1/tokenreviews" {
            let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let token = review["spec"]["token"].as_str().unwrap_or_default();
            let in_flight = state.unknown_in_flight;
            state.token_reviews.push((token.to_owned(), in_flight));
            unknown_token = !state.users.contains_key(token);
        }
        (request.method() == actix_web::http::Method::POST)
            .then(|| {
                review(&state, request.path(), &body).map(|a| {
                    let in_flight =
                        unknown_token.then(|| UnknownTokenReview::begin(&mut state, &shared));
                    (a, state.review_delay, in_flight)
                })
            })
            .flatten()
    };
    if let Some((answer, delay, in_flight)) = reviewed {
        actix_web::rt::time::sleep(delay).await;
        if in_flight.is_some() {
            while state.lock().unwrap().holding_unknown_tokens {
                actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        drop(in_flight);
        return answer;
    }
    let mut state = state.lock().unwrap();
    if request.path()
        == "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
    {
        return match &state.authentication {
            Some(data) => HttpResponse::Ok().json(json!({"kind": "ConfigMap", "apiVersion": "v1",
                "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system", "resourceVersion": "1"},
                "data": data})),
            None => status(404, "NotFound", r#"configmaps "extension-apiserver-authentication" not found"#),
        };
    }
    let segments: Vec<&str> = request.path().trim_matches('/').split('/').collect();
    if let Some(answer) = single_object(&mut state, &request, &segments, &body) {
        return answer;
    }
    if request.method() != actix_web::http::Method::GET {
        return status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        );
    }
    // (group, version, rest of the path)
    let wants_aggregated = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_aggregated_discovery);
    if wants_aggregated && !state.legacy_discovery_only {
        match segments.as_slice() {
            ["api"] => return aggregated_discovery(&state.resources, true),
            ["apis"] => return aggregated_discovery(&state.resources, false),
            _ => {}
        }
    }
    let (group, version, rest): (&str, &str, &[&str]) = match segments.as_slice() {
        ["api"] => {
            return HttpResponse::Ok().json(json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}));
        }
        ["apis"] => {
            let mut groups: BTreeMap<&str, &str> = BTreeMap::new();
            for r in state.resources.iter().filter(|r| !r.group.is_empty()) {
                groups.insert(&r.group, &r.version);
            }
            let groups: Vec<Value> = groups
                .iter()
                .map(|(g, v)| {
                    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
                    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
                })
                .collect();
            return HttpResponse::Ok()
                .json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}));
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
    };
    let served: Vec<&Resource> = state
        .resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if served.is_empty() {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let (namespace, plural) = match rest {
        [] => {
            let gv = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            return HttpResponse::Ok().json(resource_list(&gv, &served));
        }
        ["namespaces", ns, plural] => (Some(*ns), *plural),
        [plural] => (None, *plural),
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
    };
    let Some(resource) = served.iter().find(|r| r.plural == plural) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    if namespace.is_some() && !resource.namespaced {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let query = web::Query::<BTreeMap<String, String>>::from_query(request.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let selector = match LabelSelector::parse(
        query
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    ) {
        Ok(selector) => selector,
        Err(e) => {
            return status(
                400,
                "BadRequest",
                &format!("unable to parse requirement: {e}"),
            );
        }
    };
    let fields = match parse_field_selector(
        query
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    ) {
        Ok(fields) => fields,
        Err(message) => return status(400, "BadRequest", &message),
    };
    let metadata_only = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let selection = Selection {
        group: group.to_owned(),
        plural: plural.to_owned(),
        namespace: namespace.map(str::to_owned),
        selector,
        fields,
        metadata_only,
    };
    if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
        if state.refusing_watches {
            return status(
                500,
                "InternalError",
                "watches are refused (the stand-in was told so)",
            );
        }
        // From the given version; without one, from now (kube-apiserver would first send the
        // current objects as ADDED: the kube watcher always gives its list's version).
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .filter(|v| *v > 0)
            .unwrap_or(state.revision);
        if from < state.compacted {
            let expired = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                "metadata": {}, "status": "Failure", "reason": "Expired", "code": 410,
                "message": format!("too old resource version: {from} ({})", state.compacted)}});
            return HttpResponse::Ok()
                .content_type("application/json")
                .body(format!("{expired}\n"));
        }
        let seconds: u64 = query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(60);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
        let epoch = state.watch_epoch;
        return HttpResponse::Ok()
            .content_type("application/json")
            .streaming(watch_events(shared, selection, from, epoch, deadline));
    }
    let items: Vec<Value> = (state.objects.iter())
        .filter(|o| selection.selects(o))
        .map(|o| selection.render(o))
        .collect();
    let api_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let (kind, api_version) = if metadata_only {
        (
            "PartialObjectMetadataList".to_owned(),
            "meta.k8s.io/v1".to_owned(),
        )
    } else {
        (format!("{}List", resource.kind), api_version)
    };
    HttpResponse::Ok().json(json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": state.revision.to_string()}, "items": items}))
}

/// The events of a watch from revision `from`: each change after it, as the object entered,
/// changed in or left `selection`, until the deadline or until the watches are broken.
fn watch_events(
    shared: Arc<Mutex<State>>,
    selection: Selection,
    from: u64,
    epoch: u64,
    deadline: tokio::time::Instant,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    futures_util::stream::unfold(from, move |mut cursor| {
        let (shared, selection) = (shared.clone(), selection.clone());
        async move {
            loop {
                let changed = shared.lock().unwrap().changed.clone();
                let notified = changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let mut lines = String::new();
                {
                    let state = shared.lock().unwrap();
                    if state.watch_epoch != epoch {
                        return None;
                    }
                    let from = cursor;
                    for change in state.changes.iter().filter(|c| c.revision > from) {
                        cursor = change.revision;
                        let was = change.before.as_ref().filter(|o| selection.selects(o));
                        let is = change.after.as_ref().filter(|o| selection.selects(o));
                        let (kind, object) = match (was, is) {
                            (None, Some(o)) => ("ADDED", o.clone()),
                            (Some(_), Some(o)) => ("MODIFIED", o.clone()),
                            (Some(o), None) => (
                                "DELETED",
                                Object {
                                    revision: change.revision,
                                    ..o.clone()
                                },
                            ),
                            (None, None) => continue,
                        };
                        let event = json!({"type": kind, "object": selection.render(&object)});
                        lines.push_str(&format!("{event}\n"));
                    }
                }
                if !lines.is_empty() {
                    return Some((Ok(web::Bytes::from(lines)), cursor));
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return None;
                }
            }
        }
    })
}

/// GET or PATCH of one object (`…/PLURAL/NAME`); `None` for other paths. PATCH takes a JSON
/// merge patch (RFC 7386, what `kubectl annotate` and `kubectl label` send) of the metadata's
/// labels and annotations.
fn single_object(
    state: &mut State,
    request: &HttpRequest,
    segments: &[&str],
    body: &[u8],
) -> Option<HttpResponse> {
    let (group, version, namespace, plural, name) = match segments {
        ["api", version, "namespaces", ns, plural, name] => {
            ("", *version, Some(*ns), *plural, *name)
        }
        ["api", version, plural, name] if *plural != "namespaces" => {
            ("", *version, None, *plural, *name)
        }
        ["apis", group, version, "namespaces", ns, plural, name] => {
            (*group, *version, Some(*ns), *plural, *name)
        }
        ["apis", group, version, plural, name] if *plural != "namespaces" => {
            (*group, *version, None, *plural, *name)
        }
        _ => return None,
    };
    let resource = state
        .resources
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)?
        .clone();
    if resource.namespaced != namespace.is_some() {
        return Some(status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let qualified = if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    };
    let Some(at) = state.position(group, plural, namespace, name) else {
        return Some(
            HttpResponse::NotFound().json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": format!("{qualified} \"{name}\" not found"), "reason": "NotFound",
                "details": {"name": name, "group": group, "kind": plural}, "code": 404})),
        );
    };
    let api_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let render = |o: &Object| {
        json!({"kind": resource.kind, "apiVersion": api_version, "metadata": {"name": o.name,
            "namespace": o.namespace, "labels": o.labels, "annotations": o.annotations, "resourceVersion": o.revision.to_string()}})
    };
    match request.method().as_str() {
        "GET" => Some(HttpResponse::Ok().json(render(&state.objects[at]))),
        "PATCH" => {
            let content_type = request
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if content_type != "application/merge-patch+json" {
                return Some(status(
                    415,
                    "UnsupportedMediaType",
                    &format!(
                        "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (this stand-in), got {content_type:?}"
                    ),
                ));
            }
            let Ok(patch) = serde_json::from_slice::<Value>(body) else {
                return Some(status(
                    400,
                    "BadRequest",
                    "error decoding patch: invalid JSON",
                ));
            };
            let mut current = render(&state.objects[at]);
            merge_patch(&mut current, &patch);
            let strings = |v: &Value| -> Option<BTreeMap<String, String>> {
                match v {
                    Value::Null => Some(BTreeMap::new()),
                    Value::Object(map) => map
                        .iter()
                        .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                        .collect(),
                    _ => None,
                }
            };
            let (Some(labels), Some(annotations)) = (
                strings(&current["metadata"]["labels"]),
                strings(&current["metadata"]["annotations"]),
            ) else {
                return Some(status(
                    422,
                    "Invalid",
                    "labels and annotations must be maps of strings",
                ));
            };
            if current["metadata"]["name"] != name {
                return Some(status(
                    400,
                    "BadRequest",
                    "the name of the object does not match the name on the URL",
                ));
            }
            let before = state.objects[at].clone();
            state.change(Some(at), Some(before), |object| {
                object.labels = labels;
                object.annotations = annotations;
            });
            Some(HttpResponse::Ok().json(render(&state.objects[at])))
        }
        _ => Some(status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().expect("an object");
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}
