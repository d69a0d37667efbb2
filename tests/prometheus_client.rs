//! The Prometheus client against a real Prometheus: mutual TLS, extra headers, bearer-token reload, GET/POST.

mod common;

use std::time::Duration;

use common::Prometheus;
use common::proxy::RecordingProxy;
use prom_adapter::model::QueryResult;
use prom_adapter::prometheus::{Client, ClientConfig, Verb};

fn config(url: String) -> ClientConfig {
    ClientConfig {
        url,
        timeout: Duration::from_secs(5),
        headers: vec![],
        token_file: None,
        ca_file: None,
        client_cert: None,
        verb: Verb::Get,
        max_response_bytes: 64 << 20,
    }
}

fn now() -> f64 {
    prom_adapter::provider::unix_now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_ca_file_and_a_client_certificate() {
    prom_adapter::server::install_crypto_provider();
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
    prom_adapter::server::install_crypto_provider();
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
    prom_adapter::server::install_crypto_provider();
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
            prom_adapter::prometheus::Error::TooLarge { limit: 2048, .. }
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
