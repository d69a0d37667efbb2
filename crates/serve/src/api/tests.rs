//! The API in process (`actix_web::test`) over a fake Prometheus: status codes, discovery and
//! Table negotiation, and groups that exist only when their rules do.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use serde_json::Value;

use super::{AppState, configure};
use prom_adapter_core::model::{QueryResult, Sample};
use prom_adapter_core::registry::SeriesShape;
use prom_adapter_provider::custom::CustomMetrics;
use prom_adapter_provider::discovery::Health;
use prom_adapter_provider::external::ExternalMetrics;
use prom_adapter_provider::fake::FakeBackend;
use prom_adapter_provider::resource::ResourceMetrics;
use prom_adapter_provider::resource_objects::PrometheusObjects;
use prom_adapter_provider::{BackendError, MetricsBackend};
use prom_adapter_telemetry::Metrics;

const CUSTOM_ONLY: &str = r#"
rules:
- seriesQuery: 'http_requests_total{namespace!="",pod!=""}'
  resources: {overrides: {pod: {resource: pod}, namespace: {resource: namespace}}}
  name: {matches: ^(.*)_total$}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;

/// The app over `rules`, with `http_requests_total` discovered and healthy discovery.
fn state(rules: &str, backend: Arc<FakeBackend>) -> AppState {
    let snapshot = prom_adapter_provider::fake::snapshot(
        rules,
        HashMap::from([(
            r#"http_requests_total{namespace!="",pod!=""}"#.to_owned(),
            Arc::new(vec![SeriesShape::new(
                "http_requests_total",
                ["pod", "namespace"],
            )]),
        )]),
    );
    let backend: Arc<dyn MetricsBackend> = backend;
    let health = Arc::new(Health::new(Duration::from_secs(60)));
    let objects = Arc::new(PrometheusObjects::new(snapshot.clone(), backend.clone()));
    AppState {
        custom: CustomMetrics::new(
            snapshot.clone(),
            backend.clone(),
            Duration::from_secs(600),
            None,
        ),
        external: ExternalMetrics::new(snapshot.clone(), backend.clone()),
        resource: Some(ResourceMetrics::new(snapshot, backend, objects)),
        metrics: Arc::new(Metrics::new()),
        health,
        gate: None,
    }
}

/// GETs `path` with an `Accept` header; (status, content type, body as JSON or text).
async fn get(state: AppState, path: &str, accept: &str) -> (StatusCode, String, Value) {
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(state))
            .configure(configure),
    )
    .await;
    let request = test::TestRequest::get()
        .uri(path)
        .insert_header(("Accept", accept))
        .to_request();
    let response = test::call_service(&app, request).await;
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = test::read_body(response).await;
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&body).into_owned()));
    (status, content_type, value)
}

const POD_METRIC: &str =
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/web-1/http_requests";

#[actix_web::test]
async fn custom_metric_requests_answer_with_the_codes_kubernetes_clients_expect() {
    // First call: learn the query the request runs (the fake answers an empty vector: 404).
    let backend = Arc::new(FakeBackend::default());
    let (status, _, body) = get(state(CUSTOM_ONLY, backend.clone()), POD_METRIC, "*/*").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        (body["kind"].as_str(), body["code"].as_u64()),
        (Some("Status"), Some(404))
    );
    let query = backend
        .seen_queries
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    // The rule keeps pods apart: one query for the namespace's pods answers for `web-1`.
    assert_eq!(
        query,
        r#"sum(http_requests_total{namespace="default"}) by (pod)"#
    );

    // A value for the pod: 200 and a MetricValueList.
    let sample = Sample {
        labels: HashMap::from([
            ("pod".to_owned(), "web-1".to_owned()),
            ("namespace".to_owned(), "default".to_owned()),
        ]),
        value: 2.5,
        timestamp: 0.0,
    };
    backend
        .queries
        .lock()
        .unwrap()
        .insert(query.clone(), Ok(QueryResult::Vector(Arc::from([sample]))));
    let (status, _, body) = get(state(CUSTOM_ONLY, backend.clone()), POD_METRIC, "*/*").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "MetricValueList");
    assert_eq!(body["items"][0]["value"], "2500m");
    assert_eq!(body["items"][0]["describedObject"]["name"], "web-1");

    // Prometheus unavailable: 503; a malformed selector: 400; an unknown metric: 404.
    backend.queries.lock().unwrap().insert(
        query,
        Err(BackendError::Unavailable("connection refused".into())),
    );
    let (status, _, body) = get(state(CUSTOM_ONLY, backend.clone()), POD_METRIC, "*/*").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["reason"], "ServiceUnavailable");
    let bad = format!("{POD_METRIC}?metricLabelSelector=a%20in%20(");
    let (status, _, body) = get(state(CUSTOM_ONLY, backend.clone()), &bad, "*/*").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BadRequest"))
    );
    let unknown = POD_METRIC.replace("http_requests", "nope");
    let (status, _, body) = get(state(CUSTOM_ONLY, backend), &unknown, "*/*").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("nope"), "{body}");
}

#[actix_web::test]
async fn discovery_is_negotiated_and_lists_only_the_groups_the_rules_serve() {
    let backend = Arc::new(FakeBackend::default());
    // Legacy discovery: an APIGroupList with custom metrics only.
    let (status, content_type, body) = get(
        state(CUSTOM_ONLY, backend.clone()),
        "/apis",
        "application/json",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let groups: Vec<&str> = body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["custom.metrics.k8s.io"], "{body}");
    // Aggregated discovery, as kube-apiserver asks for it.
    let aggregated =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let (status, content_type, body) =
        get(state(CUSTOM_ONLY, backend.clone()), "/apis", aggregated).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.contains("as=APIGroupDiscoveryList"),
        "{content_type}"
    );
    assert_eq!(body["kind"], "APIGroupDiscoveryList");
    // Groups without rules do not exist: 404 Status.
    for path in [
        "/apis/external.metrics.k8s.io/v1beta1",
        "/apis/metrics.k8s.io/v1beta1/nodes",
    ] {
        let (status, _, body) = get(state(CUSTOM_ONLY, backend.clone()), path, "*/*").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["kind"], "Status", "{path}");
    }
}

#[actix_web::test]
async fn resource_metrics_answer_a_table_when_kubectl_asks_for_one() {
    let rules = format!(
        "{CUSTOM_ONLY}resourceRules:\n  cpu:\n    containerQuery: 'sum(rate(c{{<<.LabelMatchers>>}}[1m])) by (<<.GroupBy>>)'\n    nodeQuery: 'sum(rate(n{{<<.LabelMatchers>>}}[1m])) by (<<.GroupBy>>)'\n    resources: {{overrides: {{node: {{resource: node}}, namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}\n    containerLabel: container\n  memory:\n    containerQuery: 'sum(m{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'\n    nodeQuery: 'sum(nm{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'\n    resources: {{overrides: {{node: {{resource: node}}, namespace: {{resource: namespace}}, pod: {{resource: pod}}}}}}\n    containerLabel: container\n  window: 1m\n"
    );
    let backend = Arc::new(FakeBackend::default());
    let node = |value: f64| {
        Ok(QueryResult::Vector(Arc::from([Sample {
            labels: HashMap::from([("node".to_owned(), "node-a".to_owned())]),
            value,
            timestamp: 0.0,
        }])))
    };
    // The node list `--standalone` reads from Prometheus, then the node's CPU and memory.
    backend
        .queries
        .lock()
        .unwrap()
        .insert(r#"count by (node) ({node!=""})"#.to_owned(), node(1.0));
    backend.queries.lock().unwrap().insert(
        r#"sum(rate(n{node!=""}[1m])) by (node)"#.to_owned(),
        node(0.5),
    );
    backend.queries.lock().unwrap().insert(
        r#"sum(nm{node!=""}) by (node)"#.to_owned(),
        node(1024.0 * 1024.0),
    );
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let (status, _, body) = get(
        state(&rules, backend.clone()),
        "/apis/metrics.k8s.io/v1beta1/nodes",
        table,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{body} {:?}",
        backend.seen_queries.lock().unwrap()
    );
    assert_eq!(body["kind"], "Table", "{body}");
    assert_eq!(body["columnDefinitions"][1]["name"], "cpu", "{body}");
    assert_eq!(
        body["rows"][0]["cells"],
        serde_json::json!(["node-a", "500m", "1Mi", "1m0s"]),
        "{body}"
    );
    // A node's row names no namespace (not even null), as metrics-server's.
    assert_eq!(
        body["rows"][0]["object"],
        serde_json::json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "node-a"}}),
        "{body}"
    );
    let (_, _, body) = get(
        state(&rules, backend.clone()),
        "/apis/metrics.k8s.io/v1beta1/nodes",
        "application/json",
    )
    .await;
    assert_eq!(body["kind"], "NodeMetricsList", "{body}");
    assert_eq!(body["items"][0]["usage"]["cpu"], "500m");
    assert_eq!(body["items"][0]["usage"]["memory"], "1Mi");
}

#[actix_web::test]
async fn openapi_and_discovery_answer_304_to_their_own_etag() {
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(state(
                CUSTOM_ONLY,
                Arc::new(FakeBackend::default()),
            )))
            .configure(configure),
    )
    .await;
    let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    for (path, accept) in [("/openapi/v2", "application/json"), ("/apis", aggregated)] {
        let first = test::call_service(
            &app,
            test::TestRequest::get()
                .uri(path)
                .insert_header(("Accept", accept))
                .to_request(),
        )
        .await;
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        let tag = first
            .headers()
            .get("etag")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let again = test::call_service(
            &app,
            test::TestRequest::get()
                .uri(path)
                .insert_header(("Accept", accept))
                .insert_header(("If-None-Match", tag.as_str()))
                .to_request(),
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
}

/// Any bearer token is the user of that name, allowed everything.
struct TokenIsUser;

impl crate::auth::Reviewer for TokenIsUser {
    fn review_token<'a>(
        &'a self,
        token: &'a str,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<Option<crate::auth::User>, crate::auth::ReviewError>,
    > {
        let user = crate::auth::User {
            name: token.to_owned(),
            ..crate::auth::User::default()
        };
        Box::pin(async move { Ok(Some(user)) })
    }
    fn review_access<'a>(
        &'a self,
        _: &'a crate::auth::User,
        _: &'a crate::auth::Attributes,
    ) -> futures_util::future::BoxFuture<'a, Result<crate::auth::Decision, crate::auth::ReviewError>>
    {
        Box::pin(async {
            Ok(crate::auth::Decision {
                allowed: true,
                reason: String::new(),
            })
        })
    }
}

#[actix_web::test]
async fn a_requests_prometheus_calls_wait_in_turn_as_the_authenticated_user() {
    let backend = Arc::new(FakeBackend::default());
    let mut state = state(CUSTOM_ONLY, backend.clone());
    state.gate = Some(Arc::new(crate::auth::Gate::with_reviewers(
        Box::new(TokenIsUser),
        Box::new(TokenIsUser),
        crate::auth::AuthConfig::default(),
    )));
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(state))
            .wrap(actix_web::middleware::from_fn(super::guard))
            .configure(configure),
    )
    .await;
    for user in [
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        "mallory",
    ] {
        let request = test::TestRequest::get()
            .uri(POD_METRIC)
            .insert_header(("Authorization", format!("Bearer {user}")))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(
        *backend.seen_clients.lock().unwrap(),
        [
            "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
            "mallory"
        ]
    );
}
