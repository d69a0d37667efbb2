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
    flags: &impl serde::Serialize,
) -> Result<ServeArgs, Error> {
    use config::{Config, Environment, File, FileFormat};
    let err = |e: config::ConfigError| Error(e.to_string());
    let mut builder = Config::builder();
    if let Some(file) = settings_file {
        builder = builder.add_source(File::from(file).format(FileFormat::Yaml).required(true));
    }
    let env_map: config::Map<String, String> = env.iter().cloned().collect();
    builder = builder.add_source(
        Environment::with_prefix("PROM_ADAPTER")
            .prefix_separator("_")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("prometheus_header")
            .with_list_parse_key("tls_san")
            .with_list_parse_key("tls_cipher_suites")
            .with_list_parse_key("authorization_always_allow_paths")
            .with_list_parse_key("requestheader_allowed_names")
            .with_list_parse_key("requestheader_username_headers")
            .with_list_parse_key("requestheader_group_headers")
            .with_list_parse_key("requestheader_extra_headers_prefix")
            .source(Some(env_map)),
    );
    builder = builder.add_source(Config::try_from(flags).map_err(err)?);
    builder.build().map_err(err)?.try_deserialize().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_in_order_defaults_file_environment_flags() {
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
        ];
        let flags = crate::cli::ServeArgs {
            secure_port: Some(9443),
            standalone: true,
            ..Default::default()
        };
        let s = load(Some(&file), &env, &flags).unwrap();
        assert_eq!(
            s.prometheus_url.as_deref(),
            Some("http://from-file:9090"),
            "file"
        );
        assert_eq!(
            s.metrics_relist_interval.as_deref(),
            Some("2m"),
            "environment over file"
        );
        assert_eq!(s.secure_port, Some(9443), "flag over environment");
        assert_eq!(s.v, Some(2));
        assert!(s.standalone);
        assert_eq!(
            s.prometheus.prometheus_header,
            vec!["X-Scope-OrgID=a", "X-B=c"]
        );
        // What no layer sets stays unset, for the default where it is read.
        assert_eq!(s.prometheus.prometheus_verb, None);
        assert!(s.requestheader_username_headers.is_empty() && s.cert_dir.is_none());
        // The settings file and environment reach settings that have no flag.
        let env = vec![(
            "PROM_ADAPTER_SERVICE_ACCOUNT_DIR".to_owned(),
            "/sa".to_owned(),
        )];
        let s = load(None, &env, &crate::cli::ServeArgs::default()).unwrap();
        assert_eq!(s.service_account_dir, Some("/sa".into()));
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
}
