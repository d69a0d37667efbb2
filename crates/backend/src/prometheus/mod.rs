//! Outbound Prometheus client: series discovery, label values and instant queries, with auth, TLS and timeouts.

mod backend;
mod named;
mod series;
pub mod tenancy;
pub mod transport;
pub use backend::InstrumentedClient;
pub use named::{BackendClients, Listed, NamedBackendConfig, NamedBackends, SharedNamedBackends};

pub use series::{DecodeError, SeriesAnswer, SeriesDecoder, decode_series};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use prom_adapter_core::model::SeriesShape;
use prom_adapter_core::model::{QueryResult, Sample};
use prometheus_http_query::response::{Data as RangeData, Sample as ApiSample};

/// Queries longer than this (URL-encoded) go by POST even when GET is configured: proxies and
/// Prometheus' own limits reject long URLs with 414.
pub const MAX_GET_QUERY_BYTES: usize = 8 * 1024;

/// Why a Prometheus call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Prometheus could not be reached, timed out, or answered 5xx: worth retrying.
    #[error("Prometheus at {url} is unavailable: {reason}")]
    Unavailable {
        /// The base URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// Prometheus answered with an API error (e.g. `bad_data` for an invalid query).
    #[error("Prometheus rejected the request: {error_type}: {message}")]
    Rejected {
        /// `errorType`.
        error_type: String,
        /// `error`.
        message: String,
    },
    /// The answer was not what the Prometheus API promises.
    #[error("unexpected answer from Prometheus: {0}")]
    Decode(String),
    /// The client could not be configured.
    #[error("invalid Prometheus client settings: {0}")]
    Config(String),
    /// The answer was larger than the limit; reading stopped there.
    #[error(
        "the Prometheus answer to {path} is larger than {limit} bytes (--prometheus-max-response-bytes); narrow the rule's query or raise the limit"
    )]
    TooLarge {
        /// The API path.
        path: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A `seriesQuery`'s series could not be listed.
    #[error("listing the series of {query}: {source}")]
    Listing {
        /// The `seriesQuery`.
        query: String,
        /// Why.
        source: Box<Error>,
    },
}

impl Error {
    /// Whether the failure means Prometheus is unavailable (as opposed to a bad request).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

/// HTTP verb for queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET, with POST for long queries.
    Get,
    /// Always POST (form-encoded).
    Post,
}

/// Client settings, from flags.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL (`http://prometheus:9090`, may include a path prefix).
    pub url: String,
    /// Timeout for every call.
    pub timeout: Duration,
    /// Extra headers, e.g. `X-Scope-OrgID`.
    pub headers: Vec<(String, String)>,
    /// File holding a bearer token, re-read when it changes.
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle to verify Prometheus.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// GET or POST.
    pub verb: Verb,
    /// The largest answer read (bytes); larger ones fail while they stream in.
    pub max_response_bytes: u64,
    /// Credentials and CA from `--prometheus-auth-config` or `--prometheus-auth-incluster`.
    pub transport: Option<transport::TransportAuth>,
}

/// How long an unused connection to Prometheus stays open, and how many are kept: enough for a
/// burst of HPA syncs, without hundreds of idle sockets after a load spike.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const POOL_MAX_IDLE: usize = 32;
/// Answers up to this size, with a declared length, are read whole and decoded in place.
const SMALL_ANSWER_BYTES: u64 = 256 * 1024;

/// One series of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `(Unix seconds, value)` points.
    pub points: Vec<(f64, f64)>,
}

/// `url` as it may be shown in a log, an error or a tool's output: credentials in it (`user:pass@`,
/// which reqwest sends as basic auth) are masked, as Go's `URL.Redacted`, and a user name alone
/// (often a key) too. Also for text that does not parse as a URL.
pub fn redacted_url(url: &str) -> String {
    const MASK: &str = "xxxxx";
    if let Ok(mut parsed) = reqwest::Url::parse(url) {
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some(MASK));
        } else if !parsed.username().is_empty() {
            let _ = parsed.set_username(MASK);
        } else {
            return url.to_owned();
        }
        return parsed.to_string();
    }
    // Unparsable: mask whatever stands between the scheme and an `@` in the authority.
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let authority_end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |end| after_scheme + end);
    match url[after_scheme..authority_end].rfind('@') {
        Some(at) => format!(
            "{}{MASK}{}",
            &url[..after_scheme],
            &url[after_scheme + at..]
        ),
        None => url.to_owned(),
    }
}

/// The Prometheus client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    config: std::sync::Arc<ClientConfig>,
    /// The configured URL as errors show it (credentials masked), made once.
    shown_url: std::sync::Arc<str>,
    token: std::sync::Arc<Option<TokenFile>>,
    /// The user and password the URL carried (`http://user:pass@host`), taken out of it when the
    /// client is built: sent as basic auth, never in a URL a log or an error could show.
    basic: std::sync::Arc<Option<BasicAuth>>,
    /// `--prometheus-header`s, added to each request: a key given twice goes out twice, as from
    /// prometheus-adapter (reqwest's default headers would keep one value per key).
    headers: std::sync::Arc<HeaderMap>,
}

/// Basic auth credentials, percent-decoded from a URL's userinfo.
#[derive(Clone)]
struct BasicAuth {
    user: String,
    password: Option<secrecy::SecretString>,
}

/// Takes the userinfo out of `url`: the credentials it held, if any.
fn take_credentials(url: &mut reqwest::Url) -> Option<BasicAuth> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let credentials = BasicAuth {
        user: decode(url.username()),
        password: url.password().map(|p| decode(p).into()),
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(credentials)
}

/// `url` parsed as a base URL (a path ending in `/`), with its credentials taken out.
fn base_url(url: &str) -> Result<(reqwest::Url, Option<BasicAuth>), String> {
    let mut base = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    let basic = take_credentials(&mut base);
    Ok((base, basic))
}

impl Client {
    /// Builds a client; fails on an invalid URL or unreadable TLS files.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE);
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| Error::Config(format!("header name {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| Error::Config(format!("header {name} value: {e}")))?;
            headers.append(name, value);
        }
        if let Some(ca) = &config.ca_file {
            let pem = read(ca, "--prometheus-ca-file")?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Config(format!("--prometheus-ca-file {}: {e}", ca.display()))
            })?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "no certificates found in --prometheus-ca-file {}",
                    ca.display()
                )));
            }
            // Only this CA, as prometheus-adapter: not the system roots as well.
            builder = builder.tls_certs_only(certs);
        }
        if let Some(auth) = &config.transport {
            if config.ca_file.is_some() || config.client_cert.is_some() {
                return Err(Error::Config(
                    "give the CA and client certificate either by --prometheus-ca-file and --prometheus-client-tls-* or by --prometheus-auth-config/--prometheus-auth-incluster, not both".into(),
                ));
            }
            if let Some(pem) = &auth.ca_pem {
                let certs = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| Error::Config(format!("the auth config's CA: {e}")))?;
                builder = builder.tls_certs_only(certs);
            }
            if auth.insecure {
                builder = builder.danger_accept_invalid_certs(true);
            }
            if let Some(pem) = &auth.identity_pem {
                transport::reject_v1_certificates(pem, "the auth config's client certificate")?;
                let identity = reqwest::Identity::from_pem(pem).map_err(|e| {
                    Error::Config(format!("the auth config's client certificate and key: {e}"))
                })?;
                builder = builder.identity(identity);
            }
        }
        if let Some((cert, key)) = &config.client_cert {
            let mut pem = read(cert, "--prometheus-client-tls-cert-file")?;
            transport::reject_v1_certificates(
                &pem,
                &format!("--prometheus-client-tls-cert-file {}", cert.display()),
            )?;
            pem.extend(read(key, "--prometheus-client-tls-key-file")?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                Error::Config(format!(
                    "client certificate {} / key {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?;
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(|e| Error::Config(e.to_string()))?;
        let (base, basic) = base_url(&config.url).map_err(|e| {
            Error::Config(format!(
                "--prometheus-url {:?}: {e}",
                redacted_url(&config.url)
            ))
        })?;
        let transport_token = config.transport.as_ref().and_then(|t| t.token_file.clone());
        let has_token = config.token_file.is_some()
            || transport_token.is_some()
            || config.transport.as_ref().is_some_and(|t| t.token.is_some());
        if has_token && headers.contains_key(AUTHORIZATION) {
            // prometheus-adapter's bearer round-tripper leaves a request's own Authorization
            // alone, so the header wins there too; one Authorization line, never two. (Each
            // server worker builds its own client: say it once.)
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "--prometheus-header sets Authorization: it is sent instead of the bearer token"
                );
            });
        } else if has_token && basic.is_some() {
            // Go's client sets the URL's basic auth before the bearer round-tripper runs, which
            // then leaves it alone: the URL's credentials win, as there.
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "the Prometheus URL holds a user and password: they are sent instead of the bearer token"
                );
            });
        }
        let token = match config.token_file.as_ref().or(transport_token.as_ref()) {
            Some(path) => {
                let file = TokenFile::new(path.clone());
                file.current().map_err(|e| {
                    Error::Config(format!("--prometheus-token-file {}: {e}", path.display()))
                })?;
                Some(file)
            }
            None => None,
        };
        Ok(Self {
            http,
            base,
            shown_url: redacted_url(&config.url).into(),
            config: std::sync::Arc::new(config),
            token: std::sync::Arc::new(token),
            basic: std::sync::Arc::new(basic),
            headers: std::sync::Arc::new(headers),
        })
    }

    /// The same client (connection pool, credentials, limits) sending to `url` with `headers`
    /// added to its own: one tenant of a backend whose URL or headers are templated.
    pub fn for_target(&self, url: &str, headers: &[(String, String)]) -> Result<Self, Error> {
        let (base, basic) = base_url(url)
            .map_err(|e| Error::Config(format!("backend URL {:?}: {e}", redacted_url(url))))?;
        let mut all = (*self.headers).clone();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| Error::Config(format!("header name {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| Error::Config(format!("header {name} value {value:?}: {e}")))?;
            all.insert(name, value);
        }
        Ok(Self {
            base,
            shown_url: redacted_url(url).into(),
            basic: std::sync::Arc::new(basic),
            headers: std::sync::Arc::new(all),
            ..self.clone()
        })
    }

    /// A client with the same settings and its own connection pool.
    pub fn with_fresh_connections(&self) -> Result<Self, Error> {
        Self::new((*self.config).clone())
    }

    fn auth_header(&self) -> Result<Option<HeaderValue>, Error> {
        let inline = self.config.transport.as_ref().and_then(|t| t.token.clone());
        let value = match (self.token.as_ref(), inline) {
            (Some(file), _) => file
                .current()
                .map_err(|e| Error::Config(format!("cannot read bearer token: {e}")))?,
            (None, Some(token)) => token,
            (None, None) => return Ok(None),
        };
        let mut header = HeaderValue::from_str(&format!("Bearer {value}")).map_err(|_| {
            Error::Config("the bearer token contains characters not allowed in a header".into())
        })?;
        header.set_sensitive(true);
        Ok(Some(header))
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> Error {
        Error::Unavailable {
            url: self.shown_url.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Sends a form to an API path by GET (or POST when configured or when too long).
    async fn send(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<reqwest::Response, Error> {
        let url = self
            .base
            .join(path)
            .map_err(|e| Error::Config(e.to_string()))?;
        let encoded_len: usize = params.iter().map(|(k, v)| k.len() + v.len() * 3 + 2).sum();
        let http = &self.http;
        let mut request = if self.config.verb == Verb::Post || encoded_len > MAX_GET_QUERY_BYTES {
            http.post(url).form(params)
        } else {
            http.get(url).query(params)
        };
        for (name, value) in self.headers.iter() {
            request = request.header(name, value);
        }
        // One Authorization line: a header's, else the URL's user, else the bearer token.
        if !self.headers.contains_key(AUTHORIZATION) {
            if let Some(basic) = self.basic.as_ref() {
                use secrecy::ExposeSecret;
                let password = basic.password.as_ref().map(|p| p.expose_secret());
                request = request.basic_auth(&basic.user, password);
            } else if let Some(auth) = self.auth_header()? {
                request = request.header(AUTHORIZATION, auth);
            }
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.unavailable(describe(&e)))?;
        let status = response.status();
        if status.is_server_error() && status.as_u16() != 503 || status.as_u16() == 429 {
            return Err(self.unavailable(format!("HTTP {status}")));
        }
        Ok(response)
    }

    /// Lists the distinct series shapes matching `selector` between `start` and `end` (Unix
    /// seconds), decoding the answer as it streams in.
    pub async fn series_shapes(
        &self,
        selector: &str,
        start: f64,
        end: f64,
    ) -> Result<(Vec<SeriesShape>, u64), Error> {
        let params = matching(selector, start, end);
        let response = self.send("api/v1/series", &params).await?;
        let status = response.status();
        // Decode on a blocking thread while the next chunks arrive: receiving and decoding overlap.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
        let decoder = tokio::task::spawn_blocking(move || {
            let mut decoder = SeriesDecoder::default();
            while let Some(chunk) = receiver.blocking_recv() {
                decoder.feed(&chunk)?;
            }
            decoder.finish()
        });
        // No size limit here: the decoder keeps only the distinct shapes, so memory does not
        // follow the answer's size (a million series is a normal cluster).
        let streamed = self
            .stream_body(response, "api/v1/series", &sender, None)
            .await;
        drop(sender);
        let decoded = decoder
            .await
            .map_err(|e| Error::Decode(format!("series decoder failed: {e}")))?;
        streamed?;
        match decoded {
            Ok(SeriesAnswer::Success { shapes, series }) => Ok((shapes, series)),
            Ok(SeriesAnswer::Error {
                error_type,
                message,
            }) => Err(self.api_error(error_type, message)),
            Err(e) if status.is_success() => Err(Error::Decode(e.to_string())),
            Err(_) => Err(self.unavailable(format!("HTTP {status} without a Prometheus API body"))),
        }
    }

    /// Every series matching `selector` between `start` and `end`, with its labels (`__name__`
    /// included): for `explain`, which reports per series. Discovery uses `series_shapes`.
    pub async fn series(
        &self,
        selector: &str,
        start: f64,
        end: f64,
    ) -> Result<Vec<std::collections::BTreeMap<String, String>>, Error> {
        let params = matching(selector, start, end);
        Ok(self
            .get_json("api/v1/series", &params)
            .await?
            .unwrap_or_default())
    }

    /// A range query: every series of the result with its `(time, value)` points.
    pub async fn query_range(
        &self,
        promql: &str,
        start: f64,
        end: f64,
        step: Duration,
    ) -> Result<Vec<RangeSeries>, Error> {
        let params = [
            ("query", promql.to_owned()),
            ("start", format_time(start)),
            ("end", format_time(end)),
            ("step", format!("{}", step.as_secs_f64())),
        ];
        // The API's own types, from prometheus-http-query, read through our bounded transport.
        let data: Option<RangeData> = self.get_json("api/v1/query_range", &params).await?;
        let Some(RangeData::Matrix(matrix)) = data else {
            return Err(Error::Decode(format!(
                "query_range of {promql} did not return a matrix"
            )));
        };
        Ok(matrix
            .into_iter()
            .map(|range| {
                let (labels, samples) = range.into_inner();
                RangeSeries {
                    labels: labels.into_iter().collect(),
                    points: samples.iter().map(|s| (s.timestamp(), s.value())).collect(),
                }
            })
            .collect())
    }

    /// Prometheus's loaded configuration file (`/api/v1/status/config`), as YAML text.
    pub async fn config_yaml(&self) -> Result<String, Error> {
        #[derive(serde::Deserialize)]
        struct Config {
            yaml: String,
        }
        let config: Option<Config> = self.get_json("api/v1/status/config", &[]).await?;
        config
            .map(|c| c.yaml)
            .ok_or_else(|| Error::Decode("/api/v1/status/config: no data".into()))
    }

    /// Calls an API path and decodes the `data` of a success answer (`None` when it has none).
    async fn get_json<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<Option<T>, Error> {
        self.call(path, params, "").await
    }

    /// `get_json`; an error status whose body is no API answer is unavailable, with
    /// `status_note` after the status in its message.
    async fn call<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        params: &[(&str, String)],
        status_note: &str,
    ) -> Result<Option<T>, Error> {
        #[derive(serde::Deserialize)]
        struct Answer<T> {
            status: String,
            data: Option<T>,
            #[serde(default, rename = "errorType")]
            error_type: String,
            #[serde(default)]
            error: String,
        }
        let response = self.send(path, params).await?;
        let status = response.status();
        let answer: Answer<T> = self
            .decode_json(response, path)
            .await
            .map_err(|e| match e {
                Error::Decode(_) if !status.is_success() => {
                    self.unavailable(format!("HTTP {status}{status_note}"))
                }
                other => other,
            })?;
        if answer.status == "success" {
            Ok(answer.data)
        } else {
            Err(self.api_error(answer.error_type, answer.error))
        }
    }

    /// Values of `label` on series matching `selector` between `start` and `end`.
    pub async fn label_values(
        &self,
        label: &str,
        selector: &str,
        start: f64,
        end: f64,
    ) -> Result<Vec<String>, Error> {
        let params = matching(selector, start, end);
        let path = format!("api/v1/label/{label}/values");
        Ok(self.get_json(&path, &params).await?.unwrap_or_default())
    }

    /// Runs an instant query at `time` (Unix seconds). The answer is decoded as it streams in,
    /// and reading stops at `max_response_bytes`.
    pub async fn query(&self, promql: &str, time: f64) -> Result<QueryResult, Error> {
        #[derive(serde::Deserialize)]
        #[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
        enum Data {
            Vector(Vec<RawSample>),
            Scalar(ApiSample),
            Matrix(serde::de::IgnoredAny),
            String(serde::de::IgnoredAny),
        }
        #[derive(serde::Deserialize)]
        struct RawSample {
            metric: BudgetedLabels,
            value: ApiSample,
        }
        let timeout = format!("{}ms", self.config.timeout.as_millis());
        let params = [
            ("query", promql.to_owned()),
            ("time", format_time(time)),
            ("timeout", timeout),
        ];
        let data: Option<Data> = self
            .call("api/v1/query", &params, " without a Prometheus API body")
            .await?;
        Ok(match data {
            Some(Data::Vector(samples)) => QueryResult::Vector(
                samples
                    .into_iter()
                    .map(|raw| Sample {
                        labels: raw.metric.0,
                        value: raw.value.value(),
                        timestamp: raw.value.timestamp(),
                    })
                    .collect::<Vec<_>>()
                    .into(),
            ),
            Some(Data::Scalar(sample)) => QueryResult::Scalar(Sample {
                labels: HashMap::new(),
                value: sample.value(),
                timestamp: sample.timestamp(),
            }),
            Some(Data::Matrix(_)) => QueryResult::Matrix,
            Some(Data::String(_)) => {
                return Err(Error::Decode(format!(
                    "the query {promql} returned a string, not a vector or a scalar"
                )));
            }
            None => return Err(Error::Decode("a query answer without data".into())),
        })
    }

    fn read_failed(&self, path: &str, error: &reqwest::Error) -> Error {
        self.unavailable(format!(
            "reading the answer to {path} failed: {}",
            describe(error)
        ))
    }

    /// Sends a response body's chunks to `sink` as they arrive, stopping with `TooLarge` past
    /// `limit`. A closed sink (the decoder stopped at malformed input) ends it early.
    async fn stream_body(
        &self,
        response: reqwest::Response,
        path: &str,
        sink: &tokio::sync::mpsc::Sender<bytes::Bytes>,
        limit: Option<u64>,
    ) -> Result<(), Error> {
        let limit = limit.unwrap_or(u64::MAX);
        if response
            .content_length()
            .is_some_and(|length| length > limit)
        {
            return Err(too_large(path, limit));
        }
        let mut stream = response.bytes_stream();
        let mut received: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.read_failed(path, &e))?;
            received += chunk.len() as u64;
            if received > limit {
                return Err(too_large(path, limit));
            }
            if sink.send(chunk).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Decodes a JSON body while it streams in, on a blocking thread: the raw body is never held
    /// whole next to its decoded form, and reading stops at the size limit.
    async fn decode_json<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        response: reqwest::Response,
        path: &str,
    ) -> Result<T, Error> {
        let limit = self.config.max_response_bytes;
        // A small answer of known length (Prometheus sends a length with answers under 4 KiB,
        // which is most HPA queries) is read whole and decoded here: a blocking thread and a
        // channel would cost more than the decoding.
        if let Some(length) = response
            .content_length()
            .filter(|l| *l <= SMALL_ANSWER_BYTES)
        {
            if length > limit {
                return Err(too_large(path, limit));
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| self.read_failed(path, &e))?;
            DecodeBudget::start(limit);
            let decoded = serde_json::from_slice::<T>(&body);
            if DecodeBudget::finish() {
                return Err(too_large(path, limit));
            }
            return decoded.map_err(|e| Error::Decode(format!("{path}: {e}")));
        }
        let (sender, receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
        let decoder = tokio::task::spawn_blocking(move || {
            let reader = std::io::BufReader::with_capacity(64 * 1024, ChunkReader::new(receiver));
            DecodeBudget::start(limit);
            let decoded = serde_json::from_reader::<_, T>(reader);
            (decoded, DecodeBudget::finish())
        });
        let streamed = self.stream_body(response, path, &sender, Some(limit)).await;
        drop(sender);
        let (decoded, exceeded) = decoder
            .await
            .map_err(|e| Error::Decode(format!("the decoder of {path} failed: {e}")))?;
        streamed?;
        if exceeded {
            return Err(too_large(path, limit));
        }
        decoded.map_err(|e| Error::Decode(format!("{path}: {e}")))
    }
}

/// The memory a decoder on this thread may still spend on labels, so that an answer's decoded
/// form is bounded as its raw form is (labels decoded into maps take several times their text).
struct DecodeBudget;

thread_local! {
    static BUDGET_LEFT: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
    static BUDGET_EXCEEDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What one label costs beyond its text: two string headers, the map's slot and the allocator's
/// rounding, measured roughly.
const LABEL_OVERHEAD: u64 = 96;

impl DecodeBudget {
    fn start(limit: u64) {
        BUDGET_LEFT.set(Some(limit));
        BUDGET_EXCEEDED.set(false);
    }

    /// Ends the budget; whether it ran out.
    fn finish() -> bool {
        BUDGET_LEFT.set(None);
        BUDGET_EXCEEDED.replace(false)
    }

    /// Spends `bytes`; an error once the budget is gone (without a budget, nothing is counted).
    fn spend(bytes: u64) -> Result<(), &'static str> {
        match BUDGET_LEFT.get() {
            Some(left) if left >= bytes => {
                BUDGET_LEFT.set(Some(left - bytes));
                Ok(())
            }
            Some(_) => {
                BUDGET_EXCEEDED.set(true);
                Err("the decoded answer is larger than --prometheus-max-response-bytes")
            }
            None => Ok(()),
        }
    }
}

/// A sample's labels, decoded under the thread's `DecodeBudget`.
struct BudgetedLabels(HashMap<String, String>);

impl<'de> serde::Deserialize<'de> for BudgetedLabels {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Labels;
        impl<'de> serde::de::Visitor<'de> for Labels {
            type Value = BudgetedLabels;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of label names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::Error as _;
                let mut labels = HashMap::new();
                while let Some((name, value)) = map.next_entry::<String, String>()? {
                    let cost = (name.len() + value.len()) as u64 + LABEL_OVERHEAD;
                    DecodeBudget::spend(cost).map_err(A::Error::custom)?;
                    labels.insert(name, value);
                }
                Ok(BudgetedLabels(labels))
            }
        }
        deserializer.deserialize_map(Labels)
    }
}

/// Reads the chunks a channel delivers, in order, as one byte stream (for a blocking decoder).
struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl ChunkReader {
    fn new(chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> Self {
        Self {
            chunks,
            current: bytes::Bytes::new(),
        }
    }
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buffer.len().min(self.current.len());
        buffer[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

impl Client {
    /// An API error answer; `unavailable` and `timeout` mean Prometheus cannot answer now.
    fn api_error(&self, error_type: String, message: String) -> Error {
        if matches!(error_type.as_str(), "unavailable" | "timeout") {
            self.unavailable(format!("{error_type}: {message}"))
        } else {
            Error::Rejected {
                error_type,
                message,
            }
        }
    }
}

/// Describes a transport error without the full URL (which would repeat the query).
fn describe(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if let Some(status) = error.status() {
        return format!("HTTP {status}");
    } else {
        "request failed"
    };
    let mut source = error.source();
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

fn too_large(path: &str, limit: u64) -> Error {
    Error::TooLarge {
        path: path.to_owned(),
        limit,
    }
}

/// `match[]` and a time range, as the series and label endpoints take them.
fn matching(selector: &str, start: f64, end: f64) -> [(&'static str, String); 3] {
    [
        ("match[]", selector.to_owned()),
        ("start", format_time(start)),
        ("end", format_time(end)),
    ]
}

/// Formats Unix seconds as Prometheus accepts them, with millisecond precision.
pub fn format_time(seconds: f64) -> String {
    let text = format!("{seconds:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Config(format!("{flag} {}: {e}", path.display())))
}

/// A bearer token file, re-read at most once a second: projected service-account tokens are
/// rotated in place, possibly with the same size and timestamp granularity.
struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(Instant, String)>>,
}

impl TokenFile {
    const REFRESH: Duration = Duration::from_secs(1);

    fn new(path: PathBuf) -> Self {
        Self {
            path,
            cached: Mutex::new(None),
        }
    }

    fn current(&self) -> std::io::Result<String> {
        self.current_at(Instant::now())
    }

    /// The token as of `now` (the tests' own clock).
    fn current_at(&self, now: Instant) -> std::io::Result<String> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((read_at, token)) = cached.as_ref()
            && now.saturating_duration_since(*read_at) < Self::REFRESH
        {
            return Ok(token.clone());
        }
        let token = std::fs::read_to_string(&self.path)?.trim().to_owned();
        *cached = Some((now, token.clone()));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_masked_wherever_a_url_is_shown() {
        for (url, shown) in [
            (
                "http://user:pass@prom:9090/p",
                "http://user:xxxxx@prom:9090/p",
            ),
            (
                "https://key@mimir.example/prometheus",
                "https://xxxxx@mimir.example/prometheus",
            ),
            ("http://prom:9090", "http://prom:9090"),
            ("http://u:p@[broken/x", "http://xxxxx@[broken/x"),
            ("not a url", "not a url"),
            ("http://host/path@x", "http://host/path@x"),
        ] {
            assert_eq!(redacted_url(url), shown, "{url}");
        }
    }

    #[test]
    fn times_are_formatted_like_prometheus_expects() {
        assert_eq!(format_time(1_565_786_045.323), "1565786045.323");
        assert_eq!(format_time(1_565_786_045.0), "1565786045");
        assert_eq!(format_time(12.5), "12.5");
    }

    #[test]
    fn token_file_is_reread_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first").unwrap();
        let file = TokenFile::new(path.clone());
        let read = Instant::now();
        assert_eq!(file.current_at(read).unwrap(), "first");
        // A rotation to a token of the same length (the newline is trimmed) within one timestamp tick.
        std::fs::write(&path, "other\n").unwrap();
        assert_eq!(
            file.current_at(read + TokenFile::REFRESH - Duration::from_millis(1))
                .unwrap(),
            "first",
            "cached within the refresh interval"
        );
        assert_eq!(file.current_at(read + TokenFile::REFRESH).unwrap(), "other");
    }
}
