//! `serve`'s settings, layered: settings file < `PROM_ADAPTER_*` environment < flags; defaults apply where `serve` reads each one.

use std::path::Path;

use crate::cli::ServeArgs;

/// Why settings could not be assembled.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings: {0}")]
pub struct Error(String);

/// Layers the optional settings file, `PROM_ADAPTER_*` variables and the flags that were given
/// (`flags` serializes only those); what none of them sets stays unset, for its default.
pub fn load(
    settings_file: Option<&Path>,
    env: &[(String, String)],
    flags: &ServeArgs,
) -> Result<ServeArgs, Error> {
    use config::{Config, Environment, File, FileFormat};
    let err = |e: config::ConfigError| Error(e.to_string());
    let mut builder = Config::builder();
    if let Some(file) = settings_file {
        builder = builder.add_source(File::from(file).format(FileFormat::Yaml).required(true));
    }
    let env_map: config::Map<String, String> = env
        .iter()
        .filter(|(name, value)| !is_service_link(name, value))
        .cloned()
        .collect();
    let mut environment = Environment::with_prefix("PROM_ADAPTER")
        .prefix_separator("_")
        .try_parsing(true)
        .list_separator(",");
    for key in list_settings() {
        environment = environment.with_list_parse_key(&key);
    }
    builder = builder.add_source(environment.source(Some(env_map)));
    // The flags given, group by group (each serializes only what was given).
    for given in flags.groups_given() {
        builder = builder.add_source(given.map_err(err)?);
    }
    let layered = builder.build().map_err(err)?;
    // Each group is read on its own rather than through `#[serde(flatten)]`, which would bypass
    // the config crate's conversions (a number where a string is expected, `yes` for true) and
    // lose the key in errors. A key is unknown when no group's read uses it.
    let mut reads = Reads {
        layered,
        unused: Vec::new(),
    };
    let settings = ServeArgs::read_groups(&mut reads)?;
    let mut unknown = reads.unused.pop().unwrap_or_default();
    for unused in &reads.unused {
        unknown.retain(|key| unused.contains(key));
    }
    if !unknown.is_empty() {
        let names: Vec<String> = unknown.iter().map(|k| format!("`{k}`")).collect();
        return Err(Error(format!(
            "unknown setting {}: settings-file keys and PROM_ADAPTER_* variables are the flags' names in snake_case",
            names.join(", ")
        )));
    }
    Ok(settings)
}

/// The settings that take lists (repeatable flags, and comma-separated ones): their variables'
/// values are split at commas. From the flags' declarations, so a new list needs nothing here.
fn list_settings() -> Vec<String> {
    let command = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
    command
        .get_arguments()
        .filter(|arg| matches!(arg.get_action(), clap::ArgAction::Append))
        .map(|arg| arg.get_id().to_string())
        .collect()
}

/// The layered settings, read one group at a time, with the keys each read left unused.
pub(super) struct Reads {
    layered: config::Config,
    unused: Vec<std::collections::BTreeSet<String>>,
}

impl Reads {
    pub(super) fn group<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, Error> {
        let mut unused = std::collections::BTreeSet::new();
        let group = serde_ignored::deserialize(self.layered.clone(), |path| {
            unused.insert(path.to_string());
        })
        .map_err(|e| Error(e.to_string()))?;
        self.unused.push(unused);
        Ok(group)
    }
}

/// Whether an environment variable is one of those Kubernetes injects for a Service (here one
/// named `prom-adapter…`, such as the chart's own): `*_SERVICE_HOST`, `*_SERVICE_PORT[_NAME]`,
/// `*_PORT_443_TCP[_PROTO|_PORT|_ADDR]`, and `*_PORT=tcp://…`. Not settings.
fn is_service_link(name: &str, value: &str) -> bool {
    static LINK: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(_SERVICE_HOST|_SERVICE_PORT(_[A-Z0-9_]+)?|_PORT_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)$",
        )
        .expect("a valid regex")
    });
    LINK.is_match(name)
        || name.ends_with("_PORT")
            && ["tcp://", "udp://", "sctp://"]
                .iter()
                .any(|scheme| value.starts_with(scheme))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_setting_splits_its_variable_at_commas() {
        let mut lists = list_settings();
        lists.sort();
        assert_eq!(
            lists,
            [
                "authorization_always_allow_paths",
                "prometheus_header",
                "requestheader_allowed_names",
                "requestheader_extra_headers_prefix",
                "requestheader_group_headers",
                "requestheader_username_headers",
                "tls_cipher_suites",
                "tls_san",
            ]
        );
    }

    #[test]
    fn layers_in_order_file_environment_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.yaml");
        std::fs::write(&file, "prometheus_url: http://from-file:9090\nmetrics_relist_interval: 1m\nsecure_port: 7443\nv: 2\n").unwrap();
        let env = vec![
            (
                "PROM_ADAPTER_METRICS_RELIST_INTERVAL".to_owned(),
                "2m".to_owned(),
            ),
            ("PROM_ADAPTER_SECURE_PORT".to_owned(), "8443".to_owned()),
            (
                "PROM_ADAPTER_PROMETHEUS_HEADER".to_owned(),
                "X-Scope-OrgID=a,X-B=c".to_owned(),
            ),
            ("UNRELATED".to_owned(), "x".to_owned()),
            (
                "PROM_ADAPTER_TLS_RELOAD_INTERVAL".to_owned(),
                "5s".to_owned(),
            ),
        ];
        let flags = crate::cli::ServeArgs {
            secure_port: Some(9443),
            standalone: true,
            tls: crate::cli::serve::TlsArgs {
                tls_reload_interval: Some("3s".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let s = load(Some(&file), &env, &flags).unwrap();
        assert_eq!(
            s.prometheus_url.as_deref(),
            Some("http://from-file:9090"),
            "file"
        );
        assert_eq!(
            s.discovery.metrics_relist_interval.as_deref(),
            Some("2m"),
            "environment over file"
        );
        assert_eq!(s.secure_port, Some(9443), "flag over environment");
        assert_eq!(
            s.tls.tls_reload_interval.as_deref(),
            Some("3s"),
            "a group's flag over environment"
        );
        assert_eq!(s.logging.v, Some(2));
        assert!(s.standalone);
        assert_eq!(
            s.prometheus.prometheus_header,
            vec!["X-Scope-OrgID=a", "X-B=c"]
        );
        // What no layer sets stays unset, for the default where it is read.
        assert_eq!(s.prometheus.prometheus_verb, None);
        assert!(
            s.authentication.requestheader_username_headers.is_none() && s.tls.cert_dir.is_none()
        );
        // The settings file and environment reach settings that have no flag.
        let env = vec![(
            "PROM_ADAPTER_SERVICE_ACCOUNT_DIR".to_owned(),
            "/sa".to_owned(),
        )];
        let s = load(None, &env, &crate::cli::ServeArgs::default()).unwrap();
        assert_eq!(s.service_account_dir, Some("/sa".into()));
    }

    #[test]
    fn backends_come_from_the_settings_file_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.yaml");
        std::fs::write(
            &file,
            "backends:\n  mimir:\n    url: http://mimir/prometheus\n    headers: {X-Scope-OrgID: '<<.Tenant>>'}\n    tenants: {shop: Team-A}\n    discovery_tenant: Team-A\n    max_concurrent_queries: 8\n",
        )
        .unwrap();
        let s = load(Some(&file), &[], &crate::cli::ServeArgs::default()).unwrap();
        let mimir = &s.backends["mimir"];
        assert_eq!(mimir.url.as_deref(), Some("http://mimir/prometheus"));
        let (name, value) = mimir.headers.iter().next().unwrap();
        assert!(name.eq_ignore_ascii_case("X-Scope-OrgID"), "{name}");
        assert_eq!(value, "<<.Tenant>>");
        assert_eq!(mimir.tenants["shop"], "Team-A", "values keep their case");
        assert_eq!(mimir.max_concurrent_queries, Some(8));
        // A key a backend does not have is an error naming it.
        std::fs::write(
            &file,
            "backends:\n  mimir:\n    url: http://m\n    tenant: x\n",
        )
        .unwrap();
        let error = load(Some(&file), &[], &crate::cli::ServeArgs::default()).unwrap_err();
        assert!(error.to_string().contains("tenant"), "{error}");
    }

    #[test]
    fn bad_values_are_errors() {
        let env = vec![(
            "PROM_ADAPTER_SECURE_PORT".to_owned(),
            "not-a-port".to_owned(),
        )];
        assert!(load(None, &env, &crate::cli::ServeArgs::default()).is_err());
        assert!(
            load(
                Some(Path::new("/nonexistent/settings.yaml")),
                &[],
                &crate::cli::ServeArgs::default()
            )
            .is_err()
        );
        // A misspelt key is an error, not silently the default.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.yaml");
        std::fs::write(&file, "promethues_url: http://x\n").unwrap();
        let error = load(Some(&file), &[], &crate::cli::ServeArgs::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("promethues_url"), "{error}");
        let env = vec![(
            "PROM_ADAPTER_PROMETHEUS_ULR".to_owned(),
            "http://x".to_owned(),
        )];
        assert!(load(None, &env, &crate::cli::ServeArgs::default()).is_err());
    }

    #[test]
    fn prometheus_settings_convert_as_the_others_and_service_links_are_not_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.yaml");
        std::fs::write(
            &file,
            "prometheus_max_response_bytes: 1048576\nauthorization_always_allow_paths: []\n",
        )
        .unwrap();
        let env: Vec<(String, String)> = [
            ("PROM_ADAPTER_PROMETHEUS_AUTH_INCLUSTER", "yes"),
            ("PROM_ADAPTER_PROMETHEUS_TIMEOUT", "45s"),
            // What Kubernetes injects for a Service named prom-adapter in the namespace.
            ("PROM_ADAPTER_SERVICE_HOST", "10.96.0.10"),
            ("PROM_ADAPTER_SERVICE_PORT", "443"),
            ("PROM_ADAPTER_SERVICE_PORT_HTTPS", "443"),
            ("PROM_ADAPTER_PORT", "tcp://10.96.0.10:443"),
            ("PROM_ADAPTER_PORT_443_TCP", "tcp://10.96.0.10:443"),
            ("PROM_ADAPTER_PORT_443_TCP_PROTO", "tcp"),
            ("PROM_ADAPTER_PORT_443_TCP_PORT", "443"),
            ("PROM_ADAPTER_PORT_443_TCP_ADDR", "10.96.0.10"),
            ("PROM_ADAPTER_SECURE_PORT", "8443"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = load(Some(&file), &env, &ServeArgs::default()).unwrap();
        assert_eq!(
            s.prometheus.prometheus_max_response_bytes.as_deref(),
            Some("1048576"),
            "a number where a string is expected"
        );
        assert!(s.prometheus.prometheus_auth_incluster, "`yes` is true");
        assert_eq!(s.prometheus.prometheus_timeout.as_deref(), Some("45s"));
        assert_eq!(s.secure_port, Some(8443), "a real setting ending in _PORT");
        assert_eq!(
            s.authorization.authorization_always_allow_paths,
            Some(Vec::new()),
            "an empty list given is kept"
        );
        // A misspelt --prometheus-* key is still unknown, named.
        let env = vec![(
            "PROM_ADAPTER_PROMETHEUS_TIMEUOT".to_owned(),
            "1s".to_owned(),
        )];
        let error = load(None, &env, &ServeArgs::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("`prometheus_timeuot`"), "{error}");
    }
}
