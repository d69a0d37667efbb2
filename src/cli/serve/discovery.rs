//! Series discovery and the cluster's resources: the flags, their defaults and checks, and what they resolve to.

use std::path::PathBuf;

use clap::Args;

use super::{Problems, duration, positive};
use prom_adapter_provider::discovery::DiscoveryConfig;
use prom_adapter_serve::ClusterSettings;

/// Series discovery and the cluster's resources.
#[derive(Debug, Args, Default, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Discovery")]
#[serde(default)]
pub struct DiscoveryArgs {
    /// How often series are relisted [default: 10m].
    #[arg(long)]
    pub metrics_relist_interval: Option<String>,
    /// How far back series are listed; 0 = the relist interval [default: 0].
    #[arg(long)]
    pub metrics_max_age: Option<String>,
    /// Kubeconfig for the adapter's Kubernetes client [default: KUBECONFIG, ~/.kube/config, or the pod's service account].
    #[arg(long)]
    pub lister_kubeconfig: Option<PathBuf>,
    /// Requests per second to the Kubernetes API, sustained [default: 20].
    #[arg(long)]
    pub client_qps: Option<f32>,
    /// Requests to the Kubernetes API allowed in a burst [default: 40].
    #[arg(long)]
    pub client_burst: Option<u32>,
    /// How often the cluster's resources are re-discovered [default: 10m].
    #[arg(long)]
    pub discovery_interval: Option<String>,
    /// How long the objects a label selector lists (other than pods, which are watched) are kept for requests with the same selector; 0 keeps none [default: 5s].
    #[arg(long)]
    pub object_list_cache_ttl: Option<String>,
}

impl DiscoveryArgs {
    /// Discovery's config; the cluster client's settings go to `cluster`.
    pub(super) fn resolve(
        &self,
        p: &mut Problems,
        cluster: &mut ClusterSettings,
    ) -> DiscoveryConfig {
        let relist_interval = p.take(positive(
            &self.metrics_relist_interval,
            "10m",
            "--metrics-relist-interval",
        ));
        let max_age = match p.take(duration(&self.metrics_max_age, "0", "--metrics-max-age")) {
            d if d.is_zero() => relist_interval,
            d if d < relist_interval => {
                p.note(format!("--metrics-max-age ({d:?}) must not be less than --metrics-relist-interval ({relist_interval:?})"));
                d
            }
            d => d,
        };
        cluster.kubeconfig = self.lister_kubeconfig.clone();
        cluster.qps = self.client_qps.unwrap_or(20.0);
        cluster.burst = self.client_burst.unwrap_or(40);
        cluster.discovery_interval = p.take(positive(
            &self.discovery_interval,
            "10m",
            "--discovery-interval",
        ));
        cluster.object_list_ttl = p.take(duration(
            &self.object_list_cache_ttl,
            "5s",
            "--object-list-cache-ttl",
        ));
        DiscoveryConfig {
            relist_interval,
            max_age,
        }
    }
}
