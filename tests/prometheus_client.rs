//! The Prometheus client against a real Prometheus: mutual TLS, extra headers, bearer-token reload, GET/POST.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Prometheus;
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

/// What the recording proxy saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A transparent HTTP/1.1 proxy to a real Prometheus that records each request line and headers.
fn recording_proxy(upstream_port: u16) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let record = record.clone();
            std::thread::spawn(move || {
                let _ = forward_one(client, upstream_port, &record);
            });
        }
    });
    (port, seen)
}

fn forward_one(
    client: TcpStream,
    upstream_port: u16,
    record: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut headers = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                content_length = v.trim().parse().unwrap_or(0);
            }
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    record.lock().unwrap().push(Seen {
        method: method.clone(),
        target: target.clone(),
        headers: headers.clone(),
    });
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in &headers {
        if !k.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes())?;
    upstream.write_all(&body)?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    let mut client = client;
    client.write_all(&response)?;
    client.shutdown(std::net::Shutdown::Both)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_bearer_token_reload_and_verbs() {
    prom_adapter::server::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path());
    let (port, seen) = recording_proxy(prometheus.port);
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let mut settings = config(format!("http://127.0.0.1:{port}"));
    settings.headers = vec![("X-Scope-OrgID".into(), "tenant-a".into())];
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

    let recorded = seen.lock().unwrap().clone();
    assert_eq!(recorded.len(), 4);
    for s in &recorded {
        assert_eq!(s.header("x-scope-orgid"), Some("tenant-a"), "{s:?}");
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
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (last.method.as_str(), last.target.as_str()),
        ("POST", "/api/v1/query"),
        "--prometheus-verb=POST"
    );
}
