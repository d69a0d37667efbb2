//! The Prometheus client against a real Prometheus: mutual TLS, extra headers, bearer-token reload, GET/POST.

use crate::common;

use std::time::Duration;

use common::Prometheus;
use common::proxy::RecordingProxy;
use common::rbac_proxy::RbacProxy;
use prom_adapter_backend::prometheus::{Client, ClientConfig, Verb};
use prom_adapter_core::model::QueryResult;

fn config(url: String) -> ClientConfig {
    ClientConfig {
        url,
        timeout: Duration::from_secs(30),
        headers: vec![],
        token_file: None,
        ca_file: None,
        client_cert: None,
        verb: Verb::Get,
        max_response_bytes: 64 << 20,
        transport: None,
    }
}

fn now() -> f64 {
    prom_adapter_telemetry::clock::unix_now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_ca_file_and_a_client_certificate() {
    prom_adapter_serve::server::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::write_pki(d);
    let web = d.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {0}/server.crt\n  key_file: {0}/server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {0}/ca.crt\n",
            d.display()
        ),
    )
    .unwrap();
    let curl_args = [
        "--cacert",
        "ca.crt",
        "--cert",
        "client.crt",
        "--key",
        "client.key",
    ]
    .iter()
    .map(|a| {
        if a.ends_with(".crt") || a.ends_with(".key") {
            d.join(a).display().to_string()
        } else {
            a.to_string()
        }
    })
    .collect();
    let prometheus = Prometheus::start_with_web_config(d, Some((web, curl_args)));

    let mut good = config(prometheus.url());
    good.ca_file = Some(d.join("ca.crt"));
    good.client_cert = Some((d.join("client.crt"), d.join("client.key")));
    let client = Client::new(good.clone()).unwrap();
    let (shapes, series) = client
        .series_shapes("nginx_ingress_controller_requests", now() - 3600.0, now())
        .await
        .unwrap();
    assert_eq!(series, 4);
    assert_eq!(shapes.len(), 1, "four series, one shape");
    assert!(
        matches!(client.query("vector(1)", now()).await.unwrap(), QueryResult::Vector(v) if v.len() == 1)
    );

    let mut no_client_cert = good.clone();
    no_client_cert.client_cert = None;
    let error = Client::new(no_client_cert)
        .unwrap()
        .query("vector(1)", now())
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error}");

    let mut wrong_ca = good.clone();
    wrong_ca.ca_file = Some(d.join("other-ca.crt"));
    assert!(
        Client::new(wrong_ca)
            .unwrap()
            .query("vector(1)", now())
            .await
            .is_err()
    );

    let mut missing = good;
    missing.ca_file = Some(d.join("absent.crt"));
    let error = Client::new(missing)
        .err()
        .expect("an unreadable CA file is a configuration error");
    assert!(
        error.to_string().contains("--prometheus-ca-file"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_bearer_token_reload_and_verbs() {
    prom_adapter_serve::server::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path());
    let proxy = RecordingProxy::start(prometheus.port);
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let mut settings = config(proxy.url());
    settings.headers = vec![
        ("X-Scope-OrgID".into(), "tenant-a".into()),
        ("X-Repeated".into(), "bar".into()),
        ("X-Repeated".into(), "baz".into()),
    ];
    settings.token_file = Some(token.clone());
    let client = Client::new(settings.clone()).unwrap();

    client.query("vector(1)", now()).await.unwrap();
    let (_, series) = client
        .series_shapes("kube_pod_info", now() - 60.0, now())
        .await
        .unwrap();
    assert_eq!(series, 0, "the fixture has no kube_pod_info");
    std::fs::write(&token, "second-token").unwrap();
    // The file is re-read at most once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.query("vector(2)", now()).await.unwrap();
    let long = format!(
        "sum(vector(1)) + 0 * count(up{{job=~\"{}\"}})",
        vec!["some-job-name"; 1000].join("|")
    );
    client.query(&long, now()).await.unwrap();

    let recorded = proxy.seen();
    assert_eq!(recorded.len(), 4);
    for s in &recorded {
        assert_eq!(s.header("x-scope-orgid"), Some("tenant-a"), "{s:?}");
        // A header given twice goes out as two lines, as from prometheus-adapter.
        let repeated: Vec<&str> = s
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("x-repeated"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(repeated, ["bar", "baz"], "{s:?}");
    }
    assert_eq!(
        recorded[0].header("authorization"),
        Some("Bearer first-token")
    );
    assert_eq!(
        (
            recorded[0].method.as_str(),
            recorded[0].target.starts_with("/api/v1/query?")
        ),
        ("GET", true)
    );
    assert!(
        recorded[1].target.starts_with("/api/v1/series?") && recorded[1].target.contains("end="),
        "{:?}",
        recorded[1]
    );
    assert_eq!(
        recorded[2].header("authorization"),
        Some("Bearer second-token"),
        "the token file is re-read"
    );
    assert_eq!(
        (recorded[3].method.as_str(), recorded[3].target.as_str()),
        ("POST", "/api/v1/query"),
        "long queries go by POST"
    );

    // An Authorization header given by --prometheus-header is sent instead of the token, never
    // beside it (prometheus-adapter's bearer round-tripper leaves it alone too).
    let mut explicit = settings.clone();
    explicit
        .headers
        .push(("Authorization".into(), "Basic dXNlcjpwYXNz".into()));
    Client::new(explicit)
        .unwrap()
        .query("vector(4)", now())
        .await
        .unwrap();
    let last = proxy.seen().last().cloned().unwrap();
    let authorizations: Vec<&str> = last
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(authorizations, ["Basic dXNlcjpwYXNz"], "{last:?}");

    let mut post = settings;
    post.verb = Verb::Post;
    Client::new(post)
        .unwrap()
        .query("vector(3)", now())
        .await
        .unwrap();
    let last = proxy.seen().last().cloned().unwrap();
    assert_eq!(
        (last.method.as_str(), last.target.as_str()),
        ("POST", "/api/v1/query"),
        "--prometheus-verb=POST"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_past_the_size_limit_fail_but_the_series_listing_does_not() {
    prom_adapter_serve::server::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path());
    let mut settings = config(prometheus.url());
    settings.max_response_bytes = 2048;
    let client = Client::new(settings).unwrap();
    let every = r#"{__name__=~".+"}"#;
    // Discovery keeps only shapes, so its answer may be any size.
    let (_, series) = client
        .series_shapes(every, now() - 3600.0, now())
        .await
        .unwrap();
    assert!(series > 20, "{series} series");
    let error = client.query(every, now()).await.unwrap_err();
    assert!(
        matches!(
            error,
            prom_adapter_backend::prometheus::Error::TooLarge { limit: 2048, .. }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("larger than 2048 bytes (--prometheus-max-response-bytes)"),
        "{error}"
    );
    // A small answer under the same limit is fine.
    assert!(client.query("vector(1)", now()).await.is_ok());
}

/// A kubeconfig as kube-prometheus and OpenShift give prometheus-adapter, its paths relative to
/// the file.
fn kubeconfig(dir: &std::path::Path, user: &str) -> std::path::PathBuf {
    let path = dir.join(format!("kubeconfig-{}", user.len()));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: prometheus\nclusters:\n- name: prometheus\n  cluster:\n    server: https://not-used.example\n    certificate-authority: ca.crt\ncontexts:\n- name: prometheus\n  context: {{cluster: prometheus, user: adapter}}\nusers:\n- name: adapter\n  user:\n{user}"
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_or_the_service_account_reaches_prometheus_through_an_authenticating_proxy() {
    use prom_adapter_backend::prometheus::transport;
    prom_adapter_serve::server::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::write_pki(d);
    let prometheus = Prometheus::start(d);
    let with = |auth: transport::TransportAuth, url: String| {
        let mut settings = config(url);
        settings.transport = Some(auth);
        Client::new(settings).unwrap()
    };

    // A token file (re-read when it rotates), a client certificate and the cluster's CA.
    let proxy = RbacProxy::start(d, prometheus.url(), "first-token", true);
    std::fs::write(d.join("token"), "first-token").unwrap();
    let files = kubeconfig(
        d,
        "    tokenFile: token\n    client-certificate: client.crt\n    client-key: client.key\n",
    );
    let client = with(transport::from_kubeconfig(&files).unwrap(), proxy.url());
    assert!(matches!(
        client.query("vector(1)", now()).await.unwrap(),
        QueryResult::Vector(v) if v.len() == 1
    ));
    std::fs::write(d.join("token"), "second-token").unwrap();
    proxy.accept_only("second-token");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.query("vector(2)", now()).await.unwrap();
    assert_eq!(proxy.presented(), ["first-token", "second-token"]);

    // Inline data, as `kubectl config view --raw` writes it.
    let b64 = |file: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(d.join(file)).unwrap())
    };
    let inline = kubeconfig(
        d,
        &format!(
            "    token: second-token\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64("client.crt"),
            b64("client.key")
        ),
    );
    let client = with(transport::from_kubeconfig(&inline).unwrap(), proxy.url());
    client.query("vector(3)", now()).await.unwrap();

    // Without the client certificate the proxy ends the handshake.
    let token_only = kubeconfig(d, "    token: second-token\n");
    let client = with(
        transport::from_kubeconfig(&token_only).unwrap(),
        proxy.url(),
    );
    let error = client.query("vector(4)", now()).await.unwrap_err();
    assert!(error.is_unavailable(), "{error}");

    // In a pod: the service account's token and CA, to a proxy that needs no certificate.
    let plain = RbacProxy::start(d, prometheus.url(), "service-account-token", false);
    let account = d.join("serviceaccount");
    std::fs::create_dir_all(&account).unwrap();
    std::fs::write(account.join("token"), "service-account-token\n").unwrap();
    std::fs::copy(d.join("ca.crt"), account.join("ca.crt")).unwrap();
    let client = with(transport::in_cluster(&account).unwrap(), plain.url());
    client.query("vector(5)", now()).await.unwrap();
    assert_eq!(plain.presented(), ["service-account-token"]);

    // The binary, with prometheus-adapter's flags.
    let flag = format!("--prometheus-auth-config={}", files.display());
    let adapter = common::Adapter::start(d, &demo_rules(), &proxy.url(), &[&flag]);
    assert_eq!(adapter.curl("/readyz").0, 200);
    assert!(
        proxy.presented().len() > 2,
        "discovery went through the proxy"
    );
    drop(adapter);
    let port = common::free_port();
    let args = [
        "--standalone".to_owned(),
        format!("--config={}", demo_rules().display()),
        format!("--prometheus-url={}", plain.url()),
        "--prometheus-auth-incluster".to_owned(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", d.join("certs").display()),
    ];
    let adapter = common::Adapter::start_exactly(
        d,
        port,
        &args,
        &[("PROM_ADAPTER_SERVICE_ACCOUNT_DIR", account.as_path())],
    );
    assert_eq!(adapter.curl("/readyz").0, 200);
    assert!(plain.presented().len() > 1);
}

fn demo_rules() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_urls_user_and_password_are_one_basic_auth_header_and_never_shown() {
    prom_adapter_serve::server::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path());
    let proxy = RecordingProxy::start(prometheus.port);
    let token = dir.path().join("token");
    std::fs::write(&token, "a-bearer-token").unwrap();
    let with_user = proxy.url().replacen("://", "://reader:s%40cret@", 1);
    let mut settings = config(with_user.clone());
    settings.token_file = Some(token);
    let client = Client::new(settings.clone()).unwrap();
    client.query("vector(1)", now()).await.unwrap();
    // A tenant's client (a templated backend) takes the credentials out of its URL too.
    let tenant = client
        .for_target(&format!("{with_user}/tenant-a"), &[])
        .unwrap();
    tenant.query("vector(1)", now()).await.unwrap_err();
    let seen = proxy.seen();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        let authorization: Vec<&str> = (request.headers.iter())
            .filter(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| value.as_str())
            .collect();
        // base64("reader:s@cret"): the URL's credentials, decoded, and no bearer line beside.
        assert_eq!(authorization, ["Basic cmVhZGVyOnNAY3JldA=="], "{request:?}");
    }

    // Prometheus gone: the errors name each client's own URL, without the password.
    drop(proxy);
    drop(prometheus);
    let error = client
        .query("vector(1)", now())
        .await
        .unwrap_err()
        .to_string();
    let tenant_error = tenant
        .query("vector(1)", now())
        .await
        .unwrap_err()
        .to_string();
    for (error, path) in [(&error, ""), (&tenant_error, "/tenant-a")] {
        assert!(
            !error.contains("s%40cret") && !error.contains("s@cret"),
            "{error}"
        );
        let shown = with_user.replace("s%40cret", "xxxxx") + path;
        assert!(error.contains(&shown), "{error} should name {shown}");
    }
}
