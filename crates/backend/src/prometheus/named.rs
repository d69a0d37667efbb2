//! Named backends (the settings' `backends:`): each with its own client, limits and kept answers, and for each request the client of its tenant; and the tools' clients and series listing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::tenancy::Tenancy;
use super::{Client, ClientConfig, Error, InstrumentedClient};
use prom_adapter_core::promql::Series;
use prom_adapter_core::registry::{Registry, SeriesShape, shapes_of};
use prom_adapter_core::resources::ResourceTable;
use prom_adapter_core::rules::{RuleSet, discovery_key};
use prom_adapter_provider::query_cache::{QuerySharing, SharedQueries};
use prom_adapter_provider::{BackendError, BackendRouter, MetricsBackend};
use prom_adapter_telemetry::Metrics;

/// One backend of the settings, validated.
#[derive(Debug, Clone)]
pub struct NamedBackendConfig {
    /// Its name, as rules' `backend:` give it.
    pub name: String,
    /// How to reach it (the URL and headers as written, before templates are rendered).
    pub client: ClientConfig,
    /// Its URL and header templates and tenants.
    pub tenancy: Tenancy,
    /// Its limits and kept answers.
    pub sharing: QuerySharing,
}

/// What every worker shares about the named backends: their settings, and each one's kept
/// answers and call slots.
pub struct SharedNamedBackends {
    backends: Vec<(NamedBackendConfig, Arc<SharedQueries>)>,
    metrics: Arc<Metrics>,
}

impl SharedNamedBackends {
    /// Shared state for `configs`.
    pub fn new(configs: Vec<NamedBackendConfig>, metrics: Arc<Metrics>) -> Arc<Self> {
        let backends = configs
            .into_iter()
            .map(|config| {
                let shared =
                    SharedQueries::named(&config.name, config.sharing.clone(), metrics.clone());
                (config, shared)
            })
            .collect();
        Arc::new(Self { backends, metrics })
    }

    /// The backends' names.
    pub fn names(&self) -> Vec<&str> {
        self.backends.iter().map(|(c, _)| c.name.as_str()).collect()
    }

    /// One worker's router: a client (and connection pool) per backend.
    pub fn router(&self) -> Result<NamedBackends, Error> {
        let mut backends = HashMap::with_capacity(self.backends.len());
        for (config, shared) in &self.backends {
            backends.insert(
                config.name.clone(),
                Named {
                    name: Arc::from(config.name.as_str()),
                    client: Client::new(config.client.clone())?,
                    tenancy: config.tenancy.clone(),
                    shared: shared.clone(),
                    targets: Mutex::new(HashMap::new()),
                },
            );
        }
        Ok(NamedBackends {
            backends,
            metrics: self.metrics.clone(),
        })
    }
}

/// Targets (tenants) kept per backend and worker; past it, a target's client is built per call.
const MAX_KEPT_TARGETS: usize = 1024;

struct Named {
    name: Arc<str>,
    client: Client,
    tenancy: Tenancy,
    shared: Arc<SharedQueries>,
    /// The backend of each target (tenant) seen, by `Target::key`.
    targets: Mutex<HashMap<String, Arc<dyn MetricsBackend>>>,
}

/// The named backends, as one worker reaches them.
pub struct NamedBackends {
    backends: HashMap<String, Named>,
    metrics: Arc<Metrics>,
}

impl BackendRouter for NamedBackends {
    fn route(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<Arc<dyn MetricsBackend>, BackendError> {
        let named = self.backends.get(name).ok_or_else(|| {
            BackendError::Failed(format!(
                "no backend {name:?} in the settings' backends (the rules were checked against them when loaded)"
            ))
        })?;
        let key = (named.tenancy.target(namespace))
            .map_err(|e| BackendError::Failed(format!("backend {name}: {e}")))?
            .key;
        let mut targets = named.targets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(backend) = targets.get(&key) {
            return Ok(backend.clone());
        }
        let client = tenant_client(&named.client, &named.tenancy, namespace)
            .map_err(|e| BackendError::Failed(format!("backend {name}: {e}")))?;
        let instrumented =
            InstrumentedClient::named(client, self.metrics.clone(), named.name.clone());
        let backend: Arc<dyn MetricsBackend> = Arc::new(
            named
                .shared
                .scoped_backend(Arc::new(instrumented), key.clone()),
        );
        if targets.len() < MAX_KEPT_TARGETS {
            targets.insert(key, backend.clone());
        }
        Ok(backend)
    }
}

/// A backend's client for a request about `namespace` (`None`: discovery): its own, or, when
/// its URL or headers follow the tenant, one for the namespace's tenant. `serve` and the tools
/// both pick a tenant's client here.
fn tenant_client(
    client: &Client,
    tenancy: &Tenancy,
    namespace: Option<&str>,
) -> Result<Client, Error> {
    if !tenancy.is_templated() {
        return Ok(client.clone());
    }
    let target = tenancy.target(namespace).map_err(Error::Config)?;
    client.for_target(&target.url, &target.headers)
}

/// The default client and the named backends' clients, for the commands that call Prometheus
/// directly (`explain`, `simulate`): each rule reaches its backend, and its tenant, as in `serve`.
pub struct BackendClients {
    default: Client,
    named: HashMap<String, (Client, Tenancy)>,
}

impl BackendClients {
    /// `default` (`--prometheus-url`) and the settings' backends.
    pub fn new(default: Client, named: &[NamedBackendConfig]) -> Result<Self, Error> {
        let mut clients = HashMap::with_capacity(named.len());
        for config in named {
            let client = Client::new(config.client.clone())?;
            clients.insert(config.name.clone(), (client, config.tenancy.clone()));
        }
        Ok(Self {
            default,
            named: clients,
        })
    }

    /// The client for `backend` (`None`: the default) and a request about `namespace` (`None`:
    /// discovery).
    pub fn client(&self, backend: Option<&str>, namespace: Option<&str>) -> Result<Client, Error> {
        let Some(name) = backend else {
            return Ok(self.default.clone());
        };
        let (client, tenancy) = self.named.get(name).ok_or_else(|| {
            Error::Config(format!(
                "no backend {name:?}: give --settings with the settings file that declares it"
            ))
        })?;
        tenant_client(client, tenancy, namespace)
    }
}

/// What Prometheus lists for every `seriesQuery` of a rules file, each from its rule's backend.
pub struct Listed {
    /// Every series listed, sorted and without duplicates (for reports and warnings).
    pub series: Vec<Series>,
    /// The series shapes of each (backend, `seriesQuery`), by `rules::discovery_key`.
    pub shapes: HashMap<String, Arc<Vec<SeriesShape>>>,
    /// The listings of named backends that failed, each error naming its `seriesQuery`: their
    /// rules discover nothing, as in `serve`, where a backend that is down fails only its rules.
    pub failed: Vec<Error>,
}

impl Listed {
    /// The registry `serve`'s discovery would build from these listings.
    pub fn registry(&self, rules: &RuleSet, table: &ResourceTable) -> Registry {
        Registry::build(rules, &self.shapes, table)
    }
}

impl BackendClients {
    /// Lists the whole series of every (backend, `seriesQuery`) of `rules` between `start` and
    /// `end`, each from its backend (discovery's tenant), for the tools, which report per
    /// series. (`serve`'s discovery streams the same calls down to shapes: `series_shapes`.)
    pub async fn list_series(
        &self,
        rules: &RuleSet,
        start: f64,
        end: f64,
    ) -> Result<Listed, Error> {
        let mut series = Vec::new();
        let mut shapes = HashMap::new();
        let mut failed = Vec::new();
        for (backend, query) in rules.discovery_queries() {
            let listing = |error| Error::Listing {
                query: query.to_owned(),
                source: Box::new(error),
            };
            let answer = match self.client(backend, None) {
                Ok(client) => client.series(query, start, end).await,
                Err(error) => Err(error),
            };
            let listed: Vec<Series> = match answer {
                Ok(listed) => listed
                    .into_iter()
                    .filter_map(Series::from_api_labels)
                    .collect(),
                // The default backend's failure ends the listing: most rules read it.
                Err(error) if backend.is_none() => return Err(listing(error)),
                Err(error) => {
                    failed.push(listing(error));
                    continue;
                }
            };
            shapes.insert(
                discovery_key(backend, query),
                Arc::new(shapes_of(listed.iter())),
            );
            series.extend(listed);
        }
        series.sort();
        series.dedup();
        Ok(Listed {
            series,
            shapes,
            failed,
        })
    }
}
