//! Named backends (the settings' `backends:`): each with its own client, limits and kept answers, and for each request the client of its tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::tenancy::Tenancy;
use super::{Client, ClientConfig, Error, InstrumentedClient};
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
        let target = named.tenancy.target(namespace);
        let mut targets = named.targets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(backend) = targets.get(&target.key) {
            return Ok(backend.clone());
        }
        let client = if named.tenancy.is_templated() {
            named
                .client
                .for_target(&target.url, &target.headers)
                .map_err(|e| BackendError::Failed(format!("backend {name}: {e}")))?
        } else {
            named.client.clone()
        };
        let instrumented =
            InstrumentedClient::named(client, self.metrics.clone(), named.name.clone());
        let backend: Arc<dyn MetricsBackend> = Arc::new(
            named
                .shared
                .scoped_backend(Arc::new(instrumented), target.key.clone()),
        );
        if targets.len() < MAX_KEPT_TARGETS {
            targets.insert(target.key, backend.clone());
        }
        Ok(backend)
    }
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
        if !tenancy.is_templated() {
            return Ok(client.clone());
        }
        let target = tenancy.target(namespace);
        client.for_target(&target.url, &target.headers)
    }

    /// The default client.
    pub fn default_client(&self) -> &Client {
        &self.default
    }
}
