//! Rules-file hot reload: notices a changed file (directory watch, SIGHUP), validates it fully, and hands it to discovery; a bad file keeps the last good rules.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use prom_adapter_core::config;
use prom_adapter_core::rules::RuleSet;
use prom_adapter_provider::discovery::RulesUpdate;
use prom_adapter_telemetry::Metrics;
use prom_adapter_telemetry::clock::unix_now;

/// Editors and kubelet change a file in several steps (truncate and write, or write a new
/// directory and swap a symlink); reading once they have settled avoids a spurious failure.
const SETTLE: Duration = Duration::from_millis(300);

/// How often the fallback watcher looks at the directory when inotify is unavailable.
const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Something changed in the rules file's directory.
    File,
    /// SIGHUP: reload even when the file is unchanged (it also rediscovers).
    Signal,
}

impl Trigger {
    fn label(self) -> &'static str {
        match self {
            Trigger::File => "file",
            Trigger::Signal => "signal",
        }
    }
}

/// What one reload attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file has the content last read; nothing was done.
    Unchanged,
    /// The new rules serve now.
    Applied,
    /// The file could not be read or is invalid; the last good rules keep serving.
    Rejected(String),
}

/// Reloads one rules file into a running discovery loop.
pub struct RulesReloader {
    path: PathBuf,
    /// The settings' named backends: a file whose rules name another is refused.
    backends: Vec<String>,
    updates: mpsc::Sender<RulesUpdate>,
    metrics: Arc<Metrics>,
    published: watch::Sender<Arc<RuleSet>>,
    /// The bytes last read, good or bad: a file event that leaves them as they were is not a
    /// change (kubelet touches sibling files, editors write swap files).
    last_read: Option<Vec<u8>>,
}

impl RulesReloader {
    /// A reloader for `path`, whose content `loaded` compiled to `rules` at start; new rules go
    /// to `updates` (the discovery loop).
    pub fn new(
        path: PathBuf,
        loaded: Vec<u8>,
        rules: Arc<RuleSet>,
        updates: mpsc::Sender<RulesUpdate>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            path,
            backends: Vec::new(),
            updates,
            metrics,
            published: watch::Sender::new(rules),
            last_read: Some(loaded),
        }
    }

    /// Refuses files whose rules name a backend other than `backends`.
    #[must_use]
    pub fn with_backends(mut self, backends: Vec<String>) -> Self {
        self.backends = backends;
        self
    }

    /// The rules serving now, updated after each successful reload.
    pub fn subscribe(&self) -> watch::Receiver<Arc<RuleSet>> {
        self.published.subscribe()
    }

    /// Reloads on every change in the file's directory and on every SIGHUP, until the runtime
    /// stops. The SIGHUP handler is installed before this returns its future, so an early
    /// SIGHUP does not terminate the process.
    pub fn run(mut self) -> impl std::future::Future<Output = ()> {
        use tokio::signal::unix::{SignalKind, signal};
        let hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => Some(hangups),
            Err(error) => {
                tracing::warn!(%error, "no SIGHUP handler; rules reload on file changes only");
                None
            }
        };
        let changed = Arc::new(Notify::new());
        let watcher = watch_directory(&self.path, changed.clone());
        async move {
            let _watcher = watcher;
            let mut hangups = hangups;
            // A change between the start-up read and the watch would otherwise go unseen.
            self.reload(Trigger::File).await;
            loop {
                let hangup = async {
                    match &mut hangups {
                        Some(hangups) => hangups.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let trigger = tokio::select! {
                    _ = changed.notified() => {
                        tokio::time::sleep(SETTLE).await;
                        Trigger::File
                    }
                    Some(()) = hangup => Trigger::Signal,
                };
                self.reload(trigger).await;
            }
        }
    }

    /// Reads the file and, when it changed (or on `Signal`), validates it and hands it to
    /// discovery; waits until the new rules serve.
    pub async fn reload(&mut self, trigger: Trigger) -> Outcome {
        let file = self.path.display().to_string();
        let read = tokio::fs::read(&self.path).await;
        if trigger == Trigger::File && read.as_ref().ok() == self.last_read.as_ref() {
            return Outcome::Unchanged;
        }
        self.last_read = read.as_ref().ok().cloned();
        let compiled = read
            .map_err(|source| config::Error::Read {
                path: file.clone(),
                source,
            })
            .and_then(|bytes| {
                String::from_utf8(bytes).map_err(|error| config::Error::Read {
                    path: file.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
                })
            })
            .and_then(|text| config::parse_rules(&text, &file))
            .and_then(|rules| {
                let known: Vec<&str> = self.backends.iter().map(String::as_str).collect();
                config::check_backends(&rules, &file, &known).map(|()| rules)
            });
        let rules = match compiled {
            Ok(rules) => {
                log_load_warnings(&rules);
                Arc::new(rules)
            }
            Err(error) => {
                let problems = error.problems();
                for problem in &problems {
                    tracing::error!(%problem, "invalid rules file");
                }
                tracing::error!(
                    file,
                    trigger = trigger.label(),
                    problems = problems.len(),
                    "rules reload failed; the last good rules keep serving"
                );
                self.metrics
                    .record_reload(trigger.label(), false, unix_now());
                return Outcome::Rejected(problems.join("\n"));
            }
        };
        let (done, applied) = oneshot::channel();
        let update = RulesUpdate {
            rules: rules.clone(),
            done,
        };
        if self.updates.send(update).await.is_err() || applied.await.is_err() {
            return Outcome::Rejected("the discovery loop has stopped".into());
        }
        tracing::info!(file, trigger = trigger.label(), "rules reload succeeded");
        self.metrics
            .record_reload(trigger.label(), true, unix_now());
        self.published.send_replace(rules);
        Outcome::Applied
    }
}

/// Whether a directory event may have changed the rules file: a change (not an access: reading
/// the file ourselves must not trigger the next reload) to the file itself or to the `..data`
/// symlink of a ConfigMap volume.
fn concerns_rules(event: &notify::Event, file_name: Option<&std::ffi::OsStr>) -> bool {
    if matches!(event.kind, notify::EventKind::Access(_)) {
        return false;
    }
    event.paths.iter().any(|path| {
        let name = path.file_name();
        name.is_some_and(|n| n == "..data") || (name.is_some() && name == file_name)
    })
}

/// Watches the directory holding `path` (not the file: kubelet updates a ConfigMap volume by
/// swapping its `..data` symlink, and editors replace files), notifying `changed` on any event.
/// Falls back to polling when inotify is unavailable (its limits are per user).
fn watch_directory(path: &Path, changed: Arc<Notify>) -> Option<Box<dyn Watcher + Send>> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(std::ffi::OsStr::to_os_string);
    let handler = |changed: Arc<Notify>| {
        let name = name.clone();
        move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && concerns_rules(&event, name.as_deref())
            {
                changed.notify_one();
            }
        }
    };
    let native = notify::recommended_watcher(handler(changed.clone())).and_then(|mut watcher| {
        watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
        Ok(Box::new(watcher) as Box<dyn Watcher + Send>)
    });
    let error = match native {
        Ok(watcher) => return Some(watcher),
        Err(error) => error,
    };
    let config = notify::Config::default()
        .with_poll_interval(POLL_INTERVAL)
        .with_compare_contents(true);
    let polled = notify::PollWatcher::new(handler(changed), config).and_then(|mut watcher| {
        watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
        Ok(Box::new(watcher) as Box<dyn Watcher + Send>)
    });
    match polled {
        Ok(watcher) => {
            tracing::warn!(dir = %dir.display(), %error, "cannot watch the rules directory; polling it every {POLL_INTERVAL:?}");
            Some(watcher)
        }
        Err(poll_error) => {
            tracing::warn!(dir = %dir.display(), %error, %poll_error, "cannot watch the rules directory; rules reload on SIGHUP only");
            None
        }
    }
}

/// Reads and compiles a rules file, and returns the text it compiled (for later comparisons).
/// With `backends`, rules naming another backend are refused (`config::check_backends`).
pub fn load_rules_and_text(
    path: &Path,
    backends: Option<&[&str]>,
) -> Result<(RuleSet, String), config::Error> {
    let text = std::fs::read_to_string(path).map_err(|source| config::Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    let origin = path.display().to_string();
    let rules = config::parse_rules(&text, &origin)?;
    if let Some(backends) = backends {
        config::check_backends(&rules, &origin, backends)?;
    }
    Ok((rules, text))
}

/// Logs each of the rules' load warnings, as `serve` does at start and on every reload.
pub fn log_load_warnings(rules: &RuleSet) {
    for warning in &rules.load_warnings {
        tracing::warn!(at = %warning.at, "{}", warning.why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "rules:\n- seriesQuery: 'a_total'\n  resources: {overrides: {pod: {resource: pod}}}\n  metricsQuery: x\n";
    const BETTER: &str = "rules:\n- seriesQuery: 'b_total'\n  resources: {overrides: {pod: {resource: pod}}}\n  metricsQuery: x\n";

    /// The series queries of each rule set the stand-in discovery loop received.
    type Applied = Arc<std::sync::Mutex<Vec<Vec<String>>>>;

    /// A reloader over a file holding `GOOD`, and a stand-in discovery loop that records the
    /// series queries of the rules it receives.
    fn setup(dir: &Path) -> (RulesReloader, Applied, Arc<Metrics>) {
        let path = dir.join("config.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let rules = Arc::new(config::parse_rules(GOOD, "test").unwrap());
        let (updates, mut received) = mpsc::channel::<RulesUpdate>(1);
        let applied = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = applied.clone();
        tokio::spawn(async move {
            while let Some(update) = received.recv().await {
                let queries = update
                    .rules
                    .distinct_series_queries()
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                seen.lock().unwrap().push(queries);
                let _ = update.done.send(Default::default());
            }
        });
        let metrics = Arc::new(Metrics::new());
        let reloader = RulesReloader::new(path, GOOD.into(), rules, updates, metrics.clone());
        (reloader, applied, metrics)
    }

    fn metric_line(metrics: &Metrics, name: &str) -> String {
        metrics
            .render()
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn a_changed_file_is_applied_and_published() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reloader, applied, metrics) = setup(dir.path());
        let published = reloader.subscribe();
        std::fs::write(dir.path().join("config.yaml"), BETTER).unwrap();
        assert_eq!(reloader.reload(Trigger::File).await, Outcome::Applied);
        assert_eq!(*applied.lock().unwrap(), vec![vec!["b_total".to_owned()]]);
        assert_eq!(
            published.borrow().distinct_series_queries(),
            vec!["b_total"]
        );
        assert_eq!(
            metric_line(&metrics, "prom_adapter_config_last_reload_successful"),
            "prom_adapter_config_last_reload_successful 1"
        );
    }

    #[tokio::test]
    async fn file_events_without_a_content_change_do_nothing_but_sighup_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reloader, applied, _) = setup(dir.path());
        assert_eq!(reloader.reload(Trigger::File).await, Outcome::Unchanged);
        assert!(applied.lock().unwrap().is_empty());
        assert_eq!(reloader.reload(Trigger::Signal).await, Outcome::Applied);
        assert_eq!(applied.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_invalid_file_is_rejected_with_every_error_and_the_metric_drops() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reloader, applied, metrics) = setup(dir.path());
        let published = reloader.subscribe();
        std::fs::write(
            dir.path().join("config.yaml"),
            "rules:\n- seriesQuery: 'a_total'\n  metricsQuery: '<<.Nope'\n  name: {matches: '('}\n",
        )
        .unwrap();
        let Outcome::Rejected(error) = reloader.reload(Trigger::File).await else {
            panic!("an invalid file must be rejected");
        };
        assert!(error.contains("config.yaml"), "{error}");
        assert!(
            error.contains("config.yaml:4:19: rules[0].name.matches"),
            "{error}"
        );
        assert!(
            error.contains("config.yaml:3:17: rules[0].metricsQuery"),
            "{error}"
        );
        assert!(
            applied.lock().unwrap().is_empty(),
            "nothing reaches discovery"
        );
        assert_eq!(
            published.borrow().distinct_series_queries(),
            vec!["a_total"]
        );
        assert_eq!(
            metric_line(&metrics, "prom_adapter_config_last_reload_successful"),
            "prom_adapter_config_last_reload_successful 0"
        );
        // The same bad content again is not a new failure; fixing it is a success.
        assert_eq!(reloader.reload(Trigger::File).await, Outcome::Unchanged);
        std::fs::write(dir.path().join("config.yaml"), BETTER).unwrap();
        assert_eq!(reloader.reload(Trigger::File).await, Outcome::Applied);
        assert_eq!(
            metric_line(&metrics, "prom_adapter_config_last_reload_successful"),
            "prom_adapter_config_last_reload_successful 1"
        );
    }

    #[tokio::test]
    async fn a_missing_file_is_rejected_and_keeps_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reloader, applied, _) = setup(dir.path());
        std::fs::remove_file(dir.path().join("config.yaml")).unwrap();
        let Outcome::Rejected(error) = reloader.reload(Trigger::File).await else {
            panic!("a missing file must be rejected");
        };
        assert!(error.contains("cannot read rules file"), "{error}");
        assert!(applied.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_file_naming_an_undeclared_backend_is_rejected_and_keeps_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let (reloader, applied, _) = setup(dir.path());
        let mut reloader = reloader.with_backends(vec!["vm".into()]);
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, format!("{BETTER}  backend: thanos\n")).unwrap();
        let Outcome::Rejected(error) = reloader.reload(Trigger::File).await else {
            panic!("an undeclared backend must be rejected");
        };
        assert!(
            error.contains("rules[0].backend: no backend \"thanos\""),
            "{error}"
        );
        assert!(applied.lock().unwrap().is_empty());
        // A declared one is applied.
        std::fs::write(&path, format!("{BETTER}  backend: vm\n")).unwrap();
        assert!(matches!(
            reloader.reload(Trigger::File).await,
            Outcome::Applied
        ));
        assert_eq!(applied.lock().unwrap().len(), 1);
    }

    #[test]
    fn only_changes_to_the_rules_file_or_the_configmap_symlink_count() {
        use notify::event::{AccessKind, CreateKind, EventKind, ModifyKind};
        let event = |kind, path: &str| notify::Event::new(kind).add_path(PathBuf::from(path));
        let name = Some(std::ffi::OsStr::new("config.yaml"));
        let modify = EventKind::Modify(ModifyKind::Any);
        assert!(concerns_rules(
            &event(modify, "/etc/rules/config.yaml"),
            name
        ));
        assert!(concerns_rules(
            &event(EventKind::Create(CreateKind::Any), "/etc/rules/..data"),
            name
        ));
        // Our own read of the file is an access, and must not start another reload.
        assert!(!concerns_rules(
            &event(EventKind::Access(AccessKind::Any), "/etc/rules/config.yaml"),
            name
        ));
        assert!(!concerns_rules(
            &event(modify, "/etc/rules/notes.txt"),
            name
        ));
    }
}
