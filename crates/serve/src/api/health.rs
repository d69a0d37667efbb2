//! Health, readiness, version and the adapter's own metrics.

use super::*;

pub(super) async fn live(state: web::Data<AppState>) -> HttpResponse {
    probe(
        state.health.is_live(unix_now()),
        "discovery has stopped relisting",
    )
}

pub(super) async fn ready(state: web::Data<AppState>) -> HttpResponse {
    probe(state.health.is_ready(), "discovery has not completed yet")
}

/// A plain-text health answer, as kube-apiserver's own probes give.
pub(super) fn probe(healthy: bool, failure: &'static str) -> HttpResponse {
    if healthy {
        HttpResponse::Ok().content_type("text/plain").body("ok")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(failure)
    }
}

pub(super) async fn self_metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

pub(super) async fn version() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "major": "1",
        "minor": "0",
        "gitVersion": concat!("v", env!("CARGO_PKG_VERSION")),
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
}
