//! The settings file's `backends:` section: named Prometheus-compatible backends (Thanos Querier, Mimir, VictoriaMetrics cluster) that rules choose with `backend:`, each resolved into a client configuration, tenancy templates and limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PrometheusArgs;
use prom_adapter_backend::prometheus::NamedBackendConfig;
use prom_adapter_backend::prometheus::tenancy::Tenancy;
use prom_adapter_provider::query_cache::QuerySharing;

/// One named backend as the settings file writes it: what `--prometheus-*` takes, without the
/// prefix, plus templates, tenants and limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendSettings {
    /// Base URL; may hold `<<.Tenant>>` or `<<.Namespace>>` (VictoriaMetrics cluster:
    /// `http://vmselect:8481/select/<<.Tenant>>/prometheus`).
    pub url: Option<String>,
    /// Extra headers; values may hold `<<.Tenant>>` or `<<.Namespace>>` (Mimir, Cortex:
    /// `X-Scope-OrgID: <<.Tenant>>`).
    pub headers: BTreeMap<String, String>,
    /// Namespace → tenant. A namespace not listed takes `default_tenant`, and without one is
    /// refused (`"<<.Namespace>>"`: each is its own tenant).
    pub tenants: BTreeMap<String, String>,
    /// The tenant of namespaces `tenants` does not list; `"<<.Namespace>>"` makes each its own.
    pub default_tenant: Option<String>,
    /// The tenant discovery lists series in; required when the URL or a header is templated.
    pub discovery_tenant: Option<String>,
    /// As `--prometheus-token-file`.
    pub token_file: Option<PathBuf>,
    /// As `--prometheus-ca-file`.
    pub ca_file: Option<PathBuf>,
    /// As `--prometheus-client-tls-cert-file`.
    pub client_tls_cert_file: Option<PathBuf>,
    /// As `--prometheus-client-tls-key-file`.
    pub client_tls_key_file: Option<PathBuf>,
    /// As `--prometheus-auth-config`.
    pub auth_config: Option<PathBuf>,
    /// As `--prometheus-auth-incluster`.
    pub auth_incluster: bool,
    /// As `--prometheus-verb`.
    pub verb: Option<String>,
    /// As `--prometheus-timeout`.
    pub timeout: Option<String>,
    /// As `--prometheus-max-response-bytes`.
    pub max_response_bytes: Option<String>,
    /// As `--prometheus-max-concurrent-queries`, for this backend alone.
    pub max_concurrent_queries: Option<u32>,
    /// As `--prometheus-max-queued-queries`, for this backend alone.
    pub max_queued_queries: Option<u32>,
}

/// Every backend resolved, or every problem (`backends.NAME.field: …`) at once. `sharing` holds
/// the global TTL, step and limits, which a backend's own limits override.
pub fn resolve(
    backends: &BTreeMap<String, BackendSettings>,
    sharing: &QuerySharing,
    service_account_dir: &Path,
) -> Result<Vec<NamedBackendConfig>, Vec<String>> {
    let mut problems = Vec::new();
    let mut resolved = Vec::new();
    for (name, settings) in backends {
        let at = format!("backends.{name}");
        if !prom_adapter_core::rules::is_valid_backend_name(name) || name == "default" {
            problems.push(format!("{at}: {name:?} cannot name a backend: lower-case letters, digits and `-`, starting with a letter, at most 63 characters, and not `default` (the --prometheus-url backend)"));
            continue;
        }
        let Some(url) = settings.url.clone() else {
            problems.push(format!("{at}.url: is required"));
            continue;
        };
        let tenancy = Tenancy {
            url,
            headers: settings
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            tenants: settings.tenants.clone(),
            default_tenant: settings.default_tenant.clone(),
            discovery_tenant: settings.discovery_tenant.clone(),
        };
        let tenancy_problems = tenancy.problems();
        if !tenancy_problems.is_empty() {
            problems.extend(tenancy_problems.into_iter().map(|p| format!("{at}.{p}")));
            continue;
        }
        // The client is built for discovery's target, so that its URL and headers are checked
        // as they will be sent; requests swap in their tenant's.
        let discovery = match tenancy.target(None) {
            Ok(target) => target,
            Err(problem) => {
                problems.push(format!("{at}: {problem}"));
                continue;
            }
        };
        let args = PrometheusArgs {
            prometheus_header: discovery
                .headers
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            prometheus_token_file: settings.token_file.clone(),
            prometheus_ca_file: settings.ca_file.clone(),
            prometheus_client_tls_cert_file: settings.client_tls_cert_file.clone(),
            prometheus_client_tls_key_file: settings.client_tls_key_file.clone(),
            prometheus_auth_config: settings.auth_config.clone(),
            prometheus_auth_incluster: settings.auth_incluster,
            prometheus_verb: settings.verb.clone(),
            prometheus_timeout: settings.timeout.clone(),
            prometheus_max_response_bytes: settings.max_response_bytes.clone(),
        };
        let client = match args.client_config(&discovery.url, service_account_dir) {
            Ok(client) => client,
            Err(error) => {
                // The client's messages name the flag; here the setting is `backends.NAME.*`.
                let message = format!("{error:#}").replace("--prometheus-", "");
                problems.push(format!("{at}: {message}"));
                continue;
            }
        };
        if let Err(error) = reqwest::Url::parse(&discovery.url) {
            problems.push(format!(
                "{at}.url: {:?}: {error}",
                prom_adapter_backend::prometheus::redacted_url(&discovery.url)
            ));
            continue;
        }
        let max_concurrent = settings
            .max_concurrent_queries
            .map_or(sharing.max_concurrent, |n| n as usize);
        if max_concurrent == 0 {
            problems.push(format!("{at}.max_concurrent_queries: must be at least 1"));
        }
        resolved.push(NamedBackendConfig {
            name: name.clone(),
            sharing: QuerySharing {
                max_concurrent,
                max_queued: settings
                    .max_queued_queries
                    .map_or(sharing.max_queued, |n| n as usize),
                queue_timeout: client.timeout,
                ..sharing.clone()
            },
            client,
            tenancy,
        });
    }
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sharing() -> QuerySharing {
        QuerySharing {
            ttl: Duration::from_secs(5),
            time_step: Duration::from_secs(5),
            max_concurrent: 64,
            max_queued: 1024,
            queue_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn backends_resolve_with_their_own_limits_and_discovery_target() {
        let backends = BTreeMap::from([(
            "mimir".to_owned(),
            BackendSettings {
                url: Some("http://mimir:8080/prometheus".into()),
                headers: BTreeMap::from([("X-Scope-OrgID".into(), "<<.Tenant>>".into())]),
                default_tenant: Some("<<.Namespace>>".into()),
                discovery_tenant: Some("a|b".into()),
                timeout: Some("10s".into()),
                max_concurrent_queries: Some(8),
                ..BackendSettings::default()
            },
        )]);
        let resolved = resolve(&backends, &sharing(), Path::new("/nonexistent")).unwrap();
        assert_eq!(resolved[0].name, "mimir");
        assert_eq!(
            resolved[0].client.headers,
            vec![("X-Scope-OrgID".to_owned(), "a|b".to_owned())]
        );
        assert_eq!(resolved[0].sharing.max_concurrent, 8);
        assert_eq!(resolved[0].sharing.max_queued, 1024);
        assert_eq!(resolved[0].sharing.queue_timeout, Duration::from_secs(10));
    }

    #[test]
    fn every_bad_backend_is_reported() {
        let backends = BTreeMap::from([
            ("Bad_Name".to_owned(), BackendSettings::default()),
            ("default".to_owned(), BackendSettings::default()),
            ("no-url".to_owned(), BackendSettings::default()),
            (
                "templated".to_owned(),
                BackendSettings {
                    url: Some("http://vm/select/<<.Tenant>>/prometheus".into()),
                    ..BackendSettings::default()
                },
            ),
            (
                "slow".to_owned(),
                BackendSettings {
                    url: Some("http://thanos:9090".into()),
                    timeout: Some("soon".into()),
                    ..BackendSettings::default()
                },
            ),
        ]);
        let problems = resolve(&backends, &sharing(), Path::new("/nonexistent")).unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems[0].starts_with("backends.Bad_Name: \"Bad_Name\" cannot name"));
        assert!(problems[1].starts_with("backends.default: "));
        assert_eq!(problems[2], "backends.no-url.url: is required");
        assert!(
            problems[3].starts_with("backends.slow: timeout"),
            "{}",
            problems[3]
        );
        assert!(problems[4].starts_with("backends.templated.default_tenant: is required"));
        assert!(problems[5].starts_with("backends.templated.discovery_tenant: is required"));
    }
}
