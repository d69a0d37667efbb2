//! The adapter under attack, as an outsider would try it: token floods, identical cold requests,
//! hung reviews, crafted names, huge backend answers, idle TLS handshakes, certificates without a
//! common name and invalid UTF-8. Against a real Prometheus (behind a recording proxy where the
//! test needs to see or bend what it answers) and the stand-in kube-apiserver. What is asserted
//! is behaviour, never speed: the flood's figures are `make bench`'s (f).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::apiserver::ApiServer;
use crate::common::flood::{Flood, random_token};
use crate::common::proxy::RecordingProxy;
use crate::common::{Adapter, PATIENCE, Prometheus, Scrape, https_client as client};

const TOKEN_REVIEWS: &str = "POST /apis/authentication.k8s.io/v1/tokenreviews";
const ACCESS_REVIEWS: &str = "POST /apis/authorization.k8s.io/v1/subjectaccessreviews";
const NAMED_POD: &str =
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/web-6d4cf56db6-abcde/cpu_usage";

/// The flood, the huge answers and the idle handshakes one at a time: each takes hundreds of file
/// descriptors (the idle handshakes as many as the limit allows) or gigabytes of memory.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn demo_rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo.yaml")
}

fn url(adapter: &Adapter, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", adapter.port)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The bearer token the stand-in kube-apiserver knows, as the HPA controller's.
const HPA_TOKEN: &str = "hpa-controller";

/// The adapter in cluster mode: a real Prometheus scraping the fixture cluster behind a recording
/// proxy, and the stand-in kube-apiserver knowing `HPA_TOKEN`. Fields drop in order: the adapter
/// stops first.
struct InCluster {
    adapter: Adapter,
    apiserver: ApiServer,
    proxy: RecordingProxy,
    _prometheus: Prometheus,
}

fn in_cluster(dir: &Path, rules: &Path, extra: &[&str]) -> InCluster {
    let prometheus = Prometheus::scraping(dir, Scrape::default());
    let proxy = RecordingProxy::start(prometheus.port);
    let apiserver = ApiServer::start(dir);
    apiserver.add_user(HPA_TOKEN, "system:serviceaccount:kube-system:hpa", &[]);
    let adapter = Adapter::start_in_cluster(dir, rules, &proxy.url(), &apiserver.kubeconfig, extra);
    InCluster {
        adapter,
        apiserver,
        proxy,
        _prometheus: prometheus,
    }
}

/// Reviews one client may have running at once (`--max-reviews-per-client`'s default).
const REVIEWS_PER_CLIENT: usize = 32;

/// A legitimate request as the HPA controller makes it: (status, body).
async fn legitimate_get(client: &reqwest::Client, adapter: &Adapter, path: &str) -> (u16, String) {
    let response = client
        .get(url(adapter, path))
        .bearer_auth(HPA_TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A flood of random tokens from 256 connections, in two parts. First the API server hangs on
/// the attacker's tokens, so the attacker holds every review place it may have for as long as the
/// part lasts: a legitimate request whose review waited for one of those places would wait out
/// the hang. Then the reviews are answered at once and the attacker loops as fast as the adapter
/// lets it. Each part lasts until what it checks has happened, not for a set time, and nothing
/// is timed: how fast the legitimate client is answered under the flood is `make bench`'s (f).
#[test]
fn a_token_flood_does_not_hold_up_a_legitimate_client() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    // Answers are kept 3 s, so the legitimate client's token and decision are reviewed again
    // under the flood; the attacker's hung reviews are not given up before part one ends (it
    // ends within PATIENCE).
    let cluster = in_cluster(
        dir.path(),
        &demo_rules(),
        &[
            "--authentication-token-webhook-cache-ttl=3s",
            "--authorization-webhook-cache-authorized-ttl=3s",
            "--authentication-timeout=120s",
        ],
    );
    let adapter = &cluster.adapter;
    let apiserver = &cluster.apiserver;
    for pod in ["web-6d4cf56db6-abcde", "web-6d4cf56db6-fghij"] {
        apiserver.add_object("", "pods", Some("default"), pod, &[("app", "web")]);
    }
    let attacker = client(None);
    // The legitimate client comes from another address, as the HPA controller (through
    // kube-apiserver) does.
    let legitimate = client(Some(IpAddr::from([127, 0, 0, 2])));
    runtime().block_on(async {
        assert_eq!(legitimate_get(&legitimate, adapter, NAMED_POD).await.0, 200);
        let mut legitimate_answers = BTreeMap::<u16, usize>::new();

        // Part one: the attacker's reviews hang.
        apiserver.hold_unknown_token_reviews();
        let flood = Flood::start(&attacker, &url(adapter, NAMED_POD), 256, random_token);
        let deadline = Instant::now() + PATIENCE;
        while apiserver.unknown_token_reviews_in_flight() < REVIEWS_PER_CLIENT {
            assert!(Instant::now() < deadline, "the attacker never took its places");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let reviewed_before = apiserver.reviews_of(HPA_TOKEN).len();
        while apiserver.reviews_of(HPA_TOKEN).len() < reviewed_before + 2 {
            assert!(
                Instant::now() < deadline,
                "the legitimate token was not reviewed twice within {:?}: {legitimate_answers:?}",
                PATIENCE
            );
            let (status, body) = legitimate_get(&legitimate, adapter, NAMED_POD).await;
            assert_eq!(status, 200, "{body}");
            *legitimate_answers.entry(status).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Each review of the legitimate token went out while the attacker's were all running:
        // it took none of the attacker's places and waited for none.
        let under_the_hang = apiserver.reviews_of(HPA_TOKEN)[reviewed_before..].to_vec();
        assert!(
            under_the_hang.iter().all(|n| *n == REVIEWS_PER_CLIENT),
            "attacker reviews in flight when the legitimate token's went out: {under_the_hang:?}"
        );
        assert_eq!(
            apiserver.most_unknown_token_reviews_in_flight(),
            REVIEWS_PER_CLIENT,
            "the attacker had more reviews at the API server than its places"
        );

        // Part two: every review is answered at once.
        apiserver.release_held_reviews();
        let (part_two, reviews_before, reviewed_before) = (
            Instant::now(),
            apiserver.count(TOKEN_REVIEWS),
            apiserver.reviews_of(HPA_TOKEN).len(),
        );
        // Until the legitimate token has been reviewed twice more and the attacker has spent the
        // review burst (400), so that the rate below is the throttle's.
        let deadline = Instant::now() + PATIENCE;
        while apiserver.reviews_of(HPA_TOKEN).len() < reviewed_before + 2
            || apiserver.count(TOKEN_REVIEWS) < reviews_before + 400
        {
            assert!(
                Instant::now() < deadline,
                "part two did not see two reviews of the legitimate token and 400 of the attacker's within {PATIENCE:?}"
            );
            let (status, body) = legitimate_get(&legitimate, adapter, NAMED_POD).await;
            assert_eq!(status, 200, "{body}");
            *legitimate_answers.entry(status).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Object lists are authorized and answered under the flood too.
        let path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/cpu_usage?labelSelector=app%3Dweb";
        let (status, body) = legitimate_get(&legitimate, adapter, path).await;
        assert_eq!(status, 200, "{body}");
        let seconds = part_two.elapsed().as_secs() as usize + 1;
        let reviews = apiserver.count(TOKEN_REVIEWS) - reviews_before;
        let reviewed = apiserver.reviews_of(HPA_TOKEN).len() - reviewed_before;
        let attack = flood.stop().await;
        eprintln!(
            "flood of 256 connections: {} attacker requests by status {:?}; {reviews} TokenReviews in the {seconds} s of part two; the legitimate client's answers by status {legitimate_answers:?}, its token reviewed {reviewed} times in part two",
            attack.sent, attack.by_status
        );
        // The attacker is refused: unauthenticated, or too many reviews in flight.
        assert!(
            attack.by_status.keys().all(|s| [401, 429].contains(s)),
            "{:?}",
            attack.by_status
        );
        assert!(attack.by_status.contains_key(&401), "{:?}", attack.by_status);
        // Reviews reach the API server at most at kube's delegating client rate (200/s, bursts
        // of 400): the flood parks in the adapter instead.
        assert!(reviews <= 400 + 200 * seconds, "{reviews} TokenReviews in {seconds} s");
    });
}

#[test]
fn identical_cold_requests_share_one_token_review_and_one_access_review() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = in_cluster(dir.path(), &demo_rules(), &[]);
    let adapter = &cluster.adapter;
    let apiserver = &cluster.apiserver;
    // Slow enough that every request arrives while the first review is still out.
    apiserver.set_review_delay(Duration::from_millis(300));
    let client = client(None);
    let codes = runtime().block_on(async {
        let requests: Vec<_> = (0..50)
            .map(|_| {
                let request = client
                    .get(url(adapter, NAMED_POD))
                    .bearer_auth(HPA_TOKEN)
                    .send();
                tokio::spawn(async move { request.await.unwrap().status().as_u16() })
            })
            .collect();
        let mut codes = Vec::new();
        for request in requests {
            codes.push(request.await.unwrap());
        }
        codes
    });
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    assert_eq!(
        (
            apiserver.count(TOKEN_REVIEWS),
            apiserver.count(ACCESS_REVIEWS)
        ),
        (1, 1)
    );
}

#[test]
fn reviews_that_hang_or_fail_are_a_503_that_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = in_cluster(
        dir.path(),
        &demo_rules(),
        // Short next to the API server's 45 s hang, long enough for a review on a busy machine.
        &["--authentication-timeout=5s", "--authorization-timeout=5s"],
    );
    let adapter = &cluster.adapter;
    let apiserver = &cluster.apiserver;
    let bearer = |token: &str| format!("Authorization: Bearer {token}");
    let get = |token: &str, path: &str| {
        adapter.curl_raw(&["--max-time", "30", "-H", &bearer(token)], path)
    };
    let status = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();

    // curl gives up after 30 s, before the API server's 45 s: the 503 is the adapter's own
    // timeout.
    apiserver.set_review_delay(Duration::from_secs(45));
    let (code, body) = get(HPA_TOKEN, NAMED_POD);
    let answer = status(&body);
    assert_eq!(
        (code, answer["reason"].as_str()),
        (503, Some("ServiceUnavailable")),
        "{body}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("authentication is unavailable: the TokenReview got no answer within 5s"),
        "{body}"
    );

    // With the token known, the SubjectAccessReview is the one that hangs.
    apiserver.set_review_delay(Duration::ZERO);
    assert_eq!(get(HPA_TOKEN, NAMED_POD).0, 200);
    apiserver.set_review_delay(Duration::from_secs(45));
    let other = NAMED_POD.replace("abcde", "fghij");
    let (code, body) = get(HPA_TOKEN, &other);
    assert_eq!(code, 503, "{body}");
    assert!(
        status(&body)["message"]
            .as_str()
            .unwrap()
            .starts_with("authorization is unavailable: the SubjectAccessReview got no answer"),
        "{body}"
    );

    // kube-apiserver down: the review fails at once, and the message says so.
    apiserver.stop();
    std::thread::sleep(Duration::from_millis(500));
    let (code, body) = get("never-seen", NAMED_POD);
    assert_eq!(code, 503, "{body}");
    assert!(
        status(&body)["message"]
            .as_str()
            .unwrap()
            .starts_with("authentication is unavailable: the TokenReview failed"),
        "{body}"
    );
}

/// A rule whose template reads request values through `.LabelValuesByName`, as the attack used.
const VALUES_RULE: &str = r#"rules:
- seriesQuery: 'container_cpu_usage_seconds_total{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {as: "cpu_by_values"}
  metricsQuery: 'sum(rate(<<.Series>>{namespace="<<index .LabelValuesByName "namespace">>",pod=~"<<index .LabelValuesByName "pod">>",container!=""}[1m])) by (<<.GroupBy>>)'
"#;

fn values_rules(dir: &Path) -> PathBuf {
    let path = dir.join("values-rules.yaml");
    std::fs::write(&path, VALUES_RULE).unwrap();
    path
}

#[test]
fn a_crafted_namespace_is_a_400_and_never_reaches_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = in_cluster(dir.path(), &values_rules(dir.path()), &[]);
    let adapter = &cluster.adapter;
    let apiserver = &cluster.apiserver;
    let proxy = &cluster.proxy;
    let bearer = ["-H", "Authorization: Bearer hpa-controller"];
    let path = |namespace: &str, pod: &str| {
        format!(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/pods/{pod}/cpu_by_values"
        )
    };
    // The rule works for a real request.
    let (code, body) = adapter.curl_raw(&bearer, &path("default", "web-6d4cf56db6-abcde"));
    assert_eq!(code, 200, "{body}");

    // The namespace closes the matcher and asks for another namespace's series.
    let crafted = "x%22%7D%20or%20up%7Bjob%3D%22crafted-marker";
    let reviews = apiserver.count(ACCESS_REVIEWS);
    let (code, body) = adapter.curl_raw(&bearer, &path(crafted, "*"));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("DNS-1123 label"), "{body}");
    assert_eq!(
        apiserver.count(ACCESS_REVIEWS),
        reviews,
        "no authorization is asked for a name that cannot exist"
    );
    let seen = proxy.seen();
    assert!(
        seen.iter().all(|s| !s.decoded().contains("crafted-marker")),
        "the crafted text reached Prometheus"
    );

    // A dot in a pod name is a dot: `web.6d4cf56db6-abcde` is not `web-6d4cf56db6-abcde`
    // (prometheus-adapter's unescaped regex answered with the other pod's value).
    let (code, body) = adapter.curl_raw(&bearer, &path("default", "web.6d4cf56db6-abcde"));
    assert_eq!(code, 404, "{body}");
    let query = proxy
        .seen()
        .iter()
        .map(|s| s.decoded())
        .find(|q| q.contains("web\\\\.6d4cf56db6-abcde"))
        .expect("the query escaped the dot");
    assert!(
        query.contains(r#"pod=~"web\\.6d4cf56db6-abcde""#),
        "{query}"
    );
}

#[test]
fn invalid_utf8_and_resource_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = in_cluster(dir.path(), &demo_rules(), &[]);
    let adapter = &cluster.adapter;
    let apiserver = &cluster.apiserver;
    let proxy = &cluster.proxy;
    let with = |auth: &str, path: &str| adapter.curl_raw(&["-H", auth], path);
    let bearer = "Authorization: Bearer hpa-controller";
    let queries = |proxy: &RecordingProxy| {
        proxy
            .seen()
            .iter()
            .filter(|s| s.target.starts_with("/api/v1/query"))
            .count()
    };
    let before = queries(proxy);
    for path in [
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/web%FF/cpu_usage",
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/web-6d4cf56db6-abcde/cpu%C0usage",
        "/apis/metrics.k8s.io/v1beta1/namespaces/def%FFault/pods",
    ] {
        let (code, body) = with(bearer, path);
        assert_eq!(code, 400, "{path}: {body}");
        assert!(body.contains("not valid UTF-8"), "{body}");
    }
    assert_eq!(queries(proxy), before, "no query for an invalid path");

    // kube-apiserver's bearer parsing: any case of the scheme; two spaces are an empty token.
    assert_eq!(
        with("Authorization: bearer hpa-controller", NAMED_POD).0,
        200
    );
    assert_eq!(
        with("Authorization: Bearer  hpa-controller", NAMED_POD).0,
        401
    );

    // An alias is served as its resource, and authorized as the canonical resource.
    for alias in ["PODS", "pod", "pods."] {
        let path = NAMED_POD.replace("/pods/", &format!("/{alias}/"));
        let (code, body) = with(bearer, &path);
        assert_eq!(code, 200, "{alias}: {body}");
    }
    let sars = apiserver.access_reviews();
    assert!(!sars.is_empty());
    for review in &sars {
        assert_eq!(
            review["spec"]["resourceAttributes"]["resource"], "pods",
            "{review}"
        );
    }
}

#[test]
fn a_huge_backend_answer_is_refused_and_memory_comes_back() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let proxy = RecordingProxy::start(prometheus.port);
    // Time enough to read 64 MiB in a debug build, eight at once.
    let adapter = Adapter::start(
        dir.path(),
        &demo_rules(),
        &proxy.url(),
        // Every request its own Prometheus call (no kept answers, no shared evaluation times),
        // so that eight huge answers arrive at once.
        &[
            "--prometheus-timeout=60s",
            "--query-cache-ttl=0",
            "--query-time-step=0",
        ],
    );
    let rss = |field: &str| {
        let status = std::fs::read_to_string(format!("/proc/{}/status", adapter.pid())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap()
            .to_owned();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            / 1024
    };
    for _ in 0..5 {
        assert_eq!(adapter.curl(NAMED_POD).0, 200);
    }
    let baseline = rss("VmRSS:");

    // A valid answer of 100 MB: a vector of 400,000 samples.
    let sample = r#"{"metric":{"namespace":"default","pod":"web-6d4cf56db6-abcde","container":"app","instance":"10.0.0.1:10250","job":"kubelet","extra":"padding-padding-padding-padding-padding-padding-padding-padding-padding-padding-padding"},"value":[1700000000,"1.5"]}"#;
    let mut body = String::from(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    let count = 100_000_000 / sample.len();
    for i in 0..count {
        if i > 0 {
            body.push(',');
        }
        body.push_str(sample);
    }
    body.push_str("]}}");
    let size = body.len();
    proxy.answer_queries_with(Some(body.into_bytes()));
    let started = Instant::now();
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let requests: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| adapter.curl_raw(&["--max-time", "120"], NAMED_POD)))
            .collect();
        requests.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let codes: Vec<u16> = answers.iter().map(|(code, _)| *code).collect();
    let took = started.elapsed();
    let peak = rss("VmHWM:");
    proxy.answer_queries_with(None);
    let log = std::fs::read_to_string(&adapter.log).unwrap();
    assert!(codes.iter().all(|c| *c == 500), "{codes:?}: {log}");
    // The client is told which limit refused it (the operator's to raise), not only the log.
    for (_, body) in &answers {
        assert!(
            body.contains("larger than 67108864 bytes (--prometheus-max-response-bytes)"),
            "{body}"
        );
    }
    assert!(
        log.contains("is larger than 67108864 bytes (--prometheus-max-response-bytes)"),
        "{log}"
    );
    assert_eq!(adapter.curl(NAMED_POD).0, 200, "still serving");
    // The allocator gives freed memory back in its own time: wait for it (a bound, not a speed).
    crate::common::wait_for(|| rss("VmRSS:") < baseline + 64);
    let after = rss("VmRSS:");
    eprintln!(
        "8 concurrent answers of {size} bytes, refused in {took:?}: RSS {baseline} MiB before, peak {peak} MiB, {after} MiB after"
    );
    assert!(
        after < baseline + 64,
        "RSS {after} MiB {PATIENCE:?} after, {baseline} MiB before"
    );
}

/// Idle connections that never start their TLS handshake hold no place a real client needs. The
/// handshake timeout is a minute here, so if the idle ones filled the places (actix's default is
/// 256 per worker, one worker per core: 1,500 fill them on up to five cores), the real client
/// would wait for it, and curl gives up after 30 s.
#[test]
fn idle_tls_handshakes_do_not_hold_up_a_real_client() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let adapter = Adapter::start(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &["--tls-handshake-timeout=60s"],
    );
    // 1,500 as in the attack, fewer where the open-files limit is low: at most half of it, as
    // the tests running beside this one need theirs.
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))?
                .to_owned();
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .unwrap_or(1024);
    let idle: Vec<std::net::TcpStream> = (0..1500.min(limit / 2))
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", adapter.port)).unwrap())
        .collect();
    let (code, _) = adapter.curl_raw(&["--max-time", "30"], NAMED_POD);
    assert_eq!(code, 200, "with {} idle connections", idle.len());
}

#[test]
fn a_client_certificate_without_a_common_name_authenticates_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::scraping(dir.path(), Scrape::default());
    let apiserver = ApiServer::start(dir.path());
    let pki = dir.path().join("users");
    std::fs::create_dir_all(&pki).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "users CA");
    std::fs::write(pki.join("ca.crt"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    for (file, common_name) in [("alice", Some("alice")), ("nameless", None)] {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = common_name {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(pki.join(format!("{file}.crt")), cert.pem()).unwrap();
        std::fs::write(pki.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }
    let flag = format!("--client-ca-file={}", pki.join("ca.crt").display());
    let adapter = Adapter::start_in_cluster(
        dir.path(),
        &demo_rules(),
        &prometheus.url(),
        &apiserver.kubeconfig,
        &[&flag, "--authentication-skip-lookup"],
    );
    let with_cert = |file: &str| {
        let cert = pki.join(format!("{file}.crt")).display().to_string();
        let key = pki.join(format!("{file}.key")).display().to_string();
        adapter.curl_raw(&["--cert", &cert, "--key", &key], NAMED_POD)
    };
    assert_eq!(with_cert("alice").0, 200);
    let (code, body) = with_cert("nameless");
    assert_eq!(code, 401, "{body}");
}
