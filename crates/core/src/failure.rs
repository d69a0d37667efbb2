//! Why a metrics request failed: the one error every provider returns and the API turns into a `Status`, and the backend failures inside it.

/// Why the metrics backend failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The backend is unreachable or overloaded (the API answers 503).
    #[error("{0}")]
    Unavailable(String),
    /// The backend refused or failed the request (the API answers 500).
    #[error("{0}")]
    Failed(String),
    /// The answer was larger than the adapter reads (the API answers 500, naming the limit).
    #[error("{0}")]
    TooLarge(String),
}

/// Why a metrics request failed; the API turns each into a `Status`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No such metric for this resource and scope. (For external metrics the resource is
    /// `namespaces`; prometheus-adapter named it only when the namespace was `default`.)
    #[error("the server could not find the metric {metric} for {resource}")]
    MetricNotFound {
        /// The metric.
        metric: String,
        /// The resource as written in the request.
        resource: String,
    },
    /// The metric exists but has no value for this object.
    #[error("the server could not find the metric {metric} for {resource} {name}")]
    ObjectNotFound {
        /// The metric.
        metric: String,
        /// The resource as written in the request.
        resource: String,
        /// The object.
        name: String,
    },
    /// No resource metrics for this pod or node (it does not exist, is not running, or has no
    /// samples).
    #[error("{resource} \"{name}\" not found")]
    NoResourceMetrics {
        /// `pods` or `nodes`.
        resource: &'static str,
        /// The object.
        name: String,
    },
    /// The request cannot be answered as asked (bad selector, unsupported in this mode).
    #[error("{0}")]
    BadRequest(String),
    /// The objects of a selector could not be listed.
    #[error("unable to list matching resources")]
    ListFailed(#[source] BackendError),
    /// Prometheus (or the object source) failed or is unavailable.
    #[error("unable to fetch metrics")]
    Backend(#[from] BackendError),
    /// Discovery has not completed (Prometheus has not answered every series query yet): a
    /// metric not found may yet come.
    #[error(
        "metrics are not discovered yet: Prometheus has not answered every series query (see prom_adapter_discovery_failed_queries_total)"
    )]
    NotDiscovered,
    /// The rule's query cannot be built for this request.
    #[error("unable to fetch metrics: the rule's query cannot be built")]
    Query(#[source] crate::rules::Error),
    /// The answer cannot be served (not an instant vector, or a value no quantity holds).
    #[error("unable to fetch metrics: {0}")]
    Internal(String),
}
