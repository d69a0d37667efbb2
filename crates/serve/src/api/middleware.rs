//! The two middlewares every request passes: authentication and authorization through the gate (with the names in its path checked), and counting and timing by route.

use super::*;
use prom_adapter_provider::fair_slots::as_client;
use prom_adapter_telemetry::clock::unix_now;
use prom_adapter_telemetry::throttle::Throttle;

/// Middleware: authenticates every request through the gate (when there is one), checks the
/// names its path carries, and authorizes it with the resource in canonical form, answering
/// 400, 401, 403, 429 or 503 `Status` objects itself. Without a gate the names are still checked.
pub async fn guard(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(request).await;
    };
    let path = request.path();
    match &state.gate {
        Some(gate) if !gate.always_allowed(path) => {
            let credentials = credentials(&request, &gate.request_header());
            let user = gate
                .authenticate(&credentials)
                .await
                .map_err(verdict_error)?;
            let attributes = request_attributes(&request, &state)?;
            match gate.authorize(user, attributes).await {
                // The request's Prometheus calls wait in turn with other users' calls.
                Verdict::Allow(Some(user)) => {
                    return as_client(&user.name, next.call(request)).await;
                }
                Verdict::Allow(None) => {}
                denied => return Err(verdict_error(denied).into()),
            }
        }
        // Always-allowed paths and --standalone skip authentication, not the name checks.
        Some(_) | None => {
            request_attributes(&request, &state)?;
        }
    }
    next.call(request).await
}

/// The `Status` for a verdict that stops a request.
pub(super) fn verdict_error(verdict: Verdict) -> Error {
    match verdict {
        Verdict::Allow(_) => Error::Internal("an allowed request was stopped".into()),
        Verdict::Unauthenticated => Error::Unauthorized,
        Verdict::Forbidden(message) => Error::Forbidden(message),
        Verdict::Unavailable(message) => Error::ReviewUnavailable(message),
        Verdict::TooManyRequests(message) => Error::TooManyRequests(message),
    }
}

/// What a request does, with its names checked (a 400 otherwise) and a custom metrics resource
/// resolved to its canonical `plural.group` form through the resource table.
pub(super) fn request_attributes(
    request: &ServiceRequest,
    state: &AppState,
) -> Result<Attributes, Error> {
    let attributes = Attributes::from_request(request.method().as_str(), request.path())
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    attributes
        .check_names()
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let snapshot = state.custom.snapshot().load();
    Ok(attributes.canonical(|resource| {
        snapshot
            .table
            .resolve(&GroupResource::parse(resource))
            .map(|info| info.group_resource().to_string())
    }))
}

/// Gathers a request's credentials: bearer token, verified client certificate, and the
/// front-proxy headers (which the gate trusts only on a front-proxy connection).
pub(super) fn credentials(
    request: &ServiceRequest,
    names: &crate::auth::RequestHeaderConfig,
) -> Credentials {
    let headers: Vec<(&str, &str)> = (request.headers().iter())
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    Credentials {
        source: request.peer_addr().map(|addr| addr.ip()),
        peer: request.conn_data::<PeerIdentity>().cloned(),
        ..Credentials::from_headers(&headers, names)
    }
}

/// Middleware: counts and times every request by route pattern, and logs server-side failures
/// with their cause (which clients never see).
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = request
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let path = request.path().to_owned();
    let response = next.call(request).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status();
    if let Some(metrics) = metrics {
        metrics.record_request(&route, status.as_u16(), started.elapsed());
    }
    if status.is_server_error()
        && let Some(error) = response.response().error()
    {
        // One line per cause every 10 s: an outage fails every request the same way.
        static FAILED_REQUESTS: std::sync::LazyLock<Throttle> =
            std::sync::LazyLock::new(|| Throttle::new(10.0));
        let cause = error.to_string();
        if let Some(more) = FAILED_REQUESTS.admit(&cause, unix_now()) {
            let code = status.as_u16();
            if more == 0 {
                tracing::warn!(%path, code, %cause, "request failed");
            } else {
                tracing::warn!(%path, code, %cause, more_since_last_line = more, "request failed");
            }
        }
    }
    Ok(response)
}
