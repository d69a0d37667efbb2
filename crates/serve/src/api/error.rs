//! The one place where errors become Kubernetes `Status` responses.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use super::wire::{Empty, Status};

/// An API failure, with the status code and client-safe message it is answered with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404 with a specific message.
    #[error("{0}")]
    NotFound(String),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credentials, or credentials the cluster does not accept.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403, with Kubernetes' wording of what was denied.
    #[error("{0}")]
    Forbidden(String),
    /// 405: the metrics APIs are read-only.
    #[error("method {0} is not allowed")]
    MethodNotAllowed(String),
    /// 503: Prometheus (or discovery) is not available; the cause is logged, not sent.
    #[error("{0}")]
    Unavailable(String),
    /// 500 for an answer past the size limit; the limit is sent (it is the operator's to raise).
    #[error("{0}")]
    AnswerTooLarge(String),
    /// 503 before discovery has completed; the reason is sent.
    #[error("{0}")]
    NotDiscovered(String),
    /// 500: the cause is logged, not sent.
    #[error("{0}")]
    Internal(String),
    /// 503: authentication or authorization could not be decided (the message says which and
    /// why; it names no secret).
    #[error("{0}")]
    ReviewUnavailable(String),
    /// 429: too many reviews in flight; the client should retry after a second.
    #[error("{0}")]
    TooManyRequests(String),
    /// 500 for a failed object listing, with prometheus-adapter's message.
    #[error("{0}")]
    ListFailed(String),
}

impl Error {
    /// The generic 404 for paths we do not serve.
    pub fn no_such_path() -> Self {
        Error::NotFound("the server could not find the requested resource".into())
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Error::NotFound(m) => (StatusCode::NOT_FOUND, "NotFound", m.clone()),
            Error::BadRequest(m) => (StatusCode::BAD_REQUEST, "BadRequest", m.clone()),
            Error::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized".into(),
            ),
            Error::Forbidden(m) => (StatusCode::FORBIDDEN, "Forbidden", m.clone()),
            Error::MethodNotAllowed(method) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!(
                    "the server does not allow method {method} on this resource (the metrics APIs only serve GET)"
                ),
            ),
            Error::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the metrics backend is unavailable: unable to fetch metrics".into(),
            ),
            Error::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "Internal error occurred: unable to fetch metrics".into(),
            ),
            Error::AnswerTooLarge(m) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("Internal error occurred: unable to fetch metrics: {m}"),
            ),
            Error::NotDiscovered(m) | Error::ReviewUnavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                m.clone(),
            ),
            Error::TooManyRequests(m) => {
                (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", m.clone())
            }
            Error::ListFailed(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "Internal error occurred: unable to list matching resources".into(),
            ),
        }
    }
}

impl From<prom_adapter_core::failure::Error> for Error {
    fn from(error: prom_adapter_core::failure::Error) -> Self {
        use prom_adapter_core::failure::{BackendError, Error as Failed};
        // The whole chain, for the log line; clients see only the reason's generic text.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        match error {
            Failed::MetricNotFound { .. }
            | Failed::ObjectNotFound { .. }
            | Failed::NoResourceMetrics { .. } => Error::NotFound(message),
            Failed::BadRequest(m) => Error::BadRequest(m),
            Failed::ListFailed(_) => Error::ListFailed(message),
            Failed::Backend(BackendError::Unavailable(_)) => Error::Unavailable(message),
            Failed::Backend(BackendError::TooLarge(limit)) => Error::AnswerTooLarge(limit),
            Failed::NotDiscovered => Error::NotDiscovered(message),
            Failed::Backend(BackendError::Failed(_)) | Failed::Query(_) | Failed::Internal(_) => {
                Error::Internal(message)
            }
        }
    }
}

impl From<prom_adapter_core::request::Error> for Error {
    fn from(error: prom_adapter_core::request::Error) -> Self {
        match error {
            prom_adapter_core::request::Error::BadRequest(m) => Error::BadRequest(m),
            prom_adapter_core::request::Error::NoSuchPath => Error::no_such_path(),
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (code, reason, message) = self.parts();
        let mut response = HttpResponse::build(code);
        if matches!(
            self,
            Error::TooManyRequests(_) | Error::ReviewUnavailable(_)
        ) {
            response.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
        }
        response.json(Status {
            kind: "Status",
            api_version: "v1",
            metadata: Empty {},
            status: "Failure",
            message,
            reason,
            code: code.as_u16(),
        })
    }
}
