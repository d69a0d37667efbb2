//! Test harness: a real Prometheus (or VictoriaMetrics) scraping the fixture cluster's exporters or holding backfilled data, the adapter binary, and a real kubectl.

#![allow(dead_code)]

pub mod apiserver;
pub mod flood;
pub mod proxy;
pub mod rbac_proxy;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for something that happens within seconds on an idle machine (a server
/// starting, a reload, a scrape): generous, so that a slow or busy machine makes tests slower,
/// never failing. A wait ends as soon as its condition holds.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Serves HTTPS on loopback `port` from its own thread (one worker), with the routes `configure`
/// sets up; the handle stops it.
pub fn serve_https_on_a_thread(
    port: u16,
    tls: rustls::ServerConfig,
    configure: impl Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
) -> actix_web::dev::ServerHandle {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new().configure(configure.clone())
            })
            .workers(1)
            .bind_rustls_0_23(("127.0.0.1", port), tls)
            .unwrap()
            .run();
            sender.send(server.handle()).unwrap();
            let _ = server.await;
        })
    });
    receiver.recv().unwrap()
}

/// Polls `check` every 100 ms until it holds, for up to `PATIENCE`: whether it did.
pub fn wait_for(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTPS client of the adapter (which serves a self-signed certificate), optionally from
/// another loopback address, keeping many connections open.
pub fn https_client(from: Option<std::net::IpAddr>) -> reqwest::Client {
    prom_adapter_serve::server::install_crypto_provider();
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .local_address(from)
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A free loopback port, never one handed out before in this process: a test that stops a server
/// and starts it again on its port (a Prometheus restart) must not find it taken by another
/// test that was given it while it was free.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..10_000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
    panic!("no loopback port left that was not handed out before");
}

/// Runs a command to completion and returns its stdout; fails the test with its stderr if it fails.
pub fn stdout_of(command: &mut Command) -> Vec<u8> {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} did not start: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Writes the fixture data (now − 1 h … now + 6 h, 15 s steps) as OpenMetrics and returns its path.
pub fn generate_data(dir: &Path) -> PathBuf {
    generate_scaled_data(dir, 7 * 3600, 1, (0, 0))
}

/// Writes fixture data from an hour ago for `duration` seconds, with the `web` ingress spread over
/// `scale` controller pods × 10 paths.
pub fn generate_scaled_data(
    dir: &Path,
    duration: u64,
    scale: u32,
    (namespaces, pods): (u32, u32),
) -> PathBuf {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = now / 15 * 15 - 3600;
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gen_openmetrics.py"))
        .args([
            start.to_string(),
            duration.to_string(),
            "15".to_owned(),
            scale.to_string(),
            format!("{namespaces}x{pods}"),
        ])
        .output()
        .expect("python3 runs the data generator");
    assert!(
        out.status.success(),
        "generator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("data.om");
    std::fs::write(&path, out.stdout).unwrap();
    path
}

fn wait_http_ok(url: &str, within: Duration) -> bool {
    wait_http_ok_with(url, &[], within)
}

fn wait_http_ok_with(url: &str, curl_args: &[String], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let ok = Command::new("curl")
            .args(["-fs", "-o", "/dev/null", "--max-time", "2"])
            .args(curl_args)
            .arg(url)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A running Prometheus 2.x (Debian's package) on a loopback port.
pub struct Prometheus {
    pub port: u16,
    pub data: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// `--web.config.file` (TLS) and the curl arguments that pass it.
    web: Option<(PathBuf, Vec<String>)>,
    /// The fixture cluster's exporters it scrapes, if it scrapes.
    exporters: Option<Exporters>,
}

/// What the fixture cluster (`tests/fixtures/cluster.py`) serves and how it is scraped.
#[derive(Clone, Debug)]
pub struct Scrape {
    /// `honor_labels: true` on the applications' jobs (ingress-nginx, Istio, queue exporters), as
    /// `honorLabels: true` on their ServiceMonitors; off is the charts' default.
    pub honor_labels: bool,
    /// Seconds of history each target's first scrape returns (under an hour).
    pub history: u64,
    /// Seconds between scrapes, and between the samples of the history.
    pub interval: u64,
    /// An Ingress of namespace `default` whose request rate is BASE req/s, and PEAK between the
    /// Unix times FROM and TO: (INGRESS, FROM, TO, BASE, PEAK).
    pub surge: Option<(&'static str, i64, i64, f64, f64)>,
}

impl Default for Scrape {
    fn default() -> Self {
        Scrape {
            honor_labels: false,
            history: 360,
            interval: 2,
            surge: None,
        }
    }
}

impl Scrape {
    /// The default fixture with `honor_labels` set as given.
    pub fn honoring_labels(honor_labels: bool) -> Self {
        Scrape {
            honor_labels,
            ..Scrape::default()
        }
    }
}

/// The running exporters of the fixture cluster, and the scrape config they wrote.
pub struct Exporters {
    child: Child,
    /// The Prometheus config with the scrape jobs.
    pub config: PathBuf,
    /// The nodes and pods of the cluster, as `cluster.py` describes them.
    pub objects: serde_json::Value,
    /// How many targets (`up` series) the config has.
    pub targets: usize,
}

impl Exporters {
    /// Starts `tests/fixtures/cluster.py` writing into `dir`, and waits until it listens.
    pub fn start(dir: &Path, scrape: &Scrape) -> Self {
        use std::io::BufRead;
        std::fs::create_dir_all(dir).unwrap();
        let mut command = Command::new("python3");
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster.py"))
            .arg("--dir")
            .arg(dir)
            .args(["--history", &scrape.history.to_string()])
            .args(["--interval", &scrape.interval.to_string()]);
        if scrape.honor_labels {
            command.arg("--honor-labels");
        }
        if let Some((ingress, from, to, base, peak)) = scrape.surge {
            command.arg("--surge").args([
                ingress.to_string(),
                from.to_string(),
                to.to_string(),
                base.to_string(),
                peak.to_string(),
            ]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the fixture cluster");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let targets = line
            .strip_prefix("ready ")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("cluster.py did not start: {line:?}"));
        let objects = std::fs::read_to_string(dir.join("cluster.json")).unwrap();
        Exporters {
            child,
            config: dir.join("prometheus.yml"),
            objects: serde_json::from_str(&objects).unwrap(),
            targets,
        }
    }
}

impl Drop for Exporters {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until every one of `targets` has been scraped successfully after the Unix time `since`
/// (so, on a first start, until every history is in).
fn wait_scraped(url: &str, targets: usize, since: f64) {
    let deadline = Instant::now() + 2 * PATIENCE;
    let mut last = String::new();
    while Instant::now() < deadline {
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "2", "-G"])
            .arg(format!("{url}/api/v1/query"))
            .arg("--data-urlencode")
            // (VictoriaMetrics takes timestamp() of a selector only.)
            .arg(format!("query=count(up == 1 and timestamp(up) > {since})"))
            .output()
            .unwrap();
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        let scraped = serde_json::from_str::<serde_json::Value>(&last)
            .ok()
            .and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()?
                    .parse::<usize>()
                    .ok()
            });
        if scraped == Some(targets) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "{url} did not scrape all {targets} targets within {:?}: {last}",
        2 * PATIENCE
    );
}

impl Prometheus {
    /// Backfills the fixture data and starts Prometheus.
    pub fn start(dir: &Path) -> Self {
        Self::start_with_web_config(dir, None)
    }

    /// Like `start`, serving with a `--web.config.file` (e.g. TLS); `curl_args` let the
    /// readiness probe through.
    pub fn start_with_web_config(dir: &Path, web: Option<(PathBuf, Vec<String>)>) -> Self {
        Self::start_with(dir, generate_data(dir), web)
    }

    /// Starts Prometheus with `config` (a prometheus.yml) and an empty database.
    pub fn with_config(dir: &Path, config: &str) -> Self {
        let data = dir.join("prometheus");
        std::fs::create_dir_all(&data).unwrap();
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut prometheus = Prometheus {
            port: free_port(),
            data,
            config: config_path,
            log: dir.join("prometheus.log"),
            child: None,
            web: None,
            exporters: None,
        };
        prometheus.restart();
        prometheus
    }

    /// Starts Prometheus with the `web` ingress spread over `scale` × 10 series per status.
    pub fn start_scaled(dir: &Path, duration: u64, scale: u32) -> Self {
        Self::start_with(
            dir,
            generate_scaled_data(dir, duration, scale, (0, 0)),
            None,
        )
    }

    /// Starts Prometheus with `namespaces` × `pods` more pods' cAdvisor series.
    pub fn start_with_pods(dir: &Path, duration: u64, namespaces: u32, pods: u32) -> Self {
        let data = generate_scaled_data(dir, duration, 1, (namespaces, pods));
        Self::start_with(dir, data, None)
    }

    /// Backfills the OpenMetrics file `om` and starts Prometheus.
    pub fn start_with_openmetrics(dir: &Path, om: PathBuf) -> Self {
        Self::start_with(dir, om, None)
    }

    /// Starts the fixture cluster's exporters and a Prometheus scraping them with the jobs
    /// kube-prometheus-stack and the exporters' charts give them; returns once every target has
    /// been scraped, so the history of every series is in.
    pub fn scraping(dir: &Path, scrape: Scrape) -> Self {
        let exporters = Exporters::start(&dir.join("cluster"), &scrape);
        let data = dir.join("prometheus");
        std::fs::create_dir_all(&data).unwrap();
        let mut prometheus = Prometheus {
            port: free_port(),
            data,
            config: exporters.config.clone(),
            log: dir.join("prometheus.log"),
            child: None,
            web: None,
            exporters: Some(exporters),
        };
        prometheus.restart();
        prometheus
    }

    /// The fixture cluster's objects (when scraping).
    pub fn objects(&self) -> &serde_json::Value {
        &self
            .exporters
            .as_ref()
            .expect("a scraping Prometheus")
            .objects
    }

    fn start_with(dir: &Path, om: PathBuf, web: Option<(PathBuf, Vec<String>)>) -> Self {
        let data = dir.join("prometheus");
        std::fs::create_dir_all(&data).unwrap();
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
            .arg(&om)
            .arg(&data)
            .output()
            .expect("promtool is installed (make deps)");
        assert!(
            out.status.success(),
            "backfill failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
        )
        .unwrap();
        let mut prometheus = Prometheus {
            port: free_port(),
            data,
            config,
            log: dir.join("prometheus.log"),
            child: None,
            web,
            exporters: None,
        };
        prometheus.restart();
        prometheus
    }

    /// Base URL.
    pub fn url(&self) -> String {
        let scheme = if self.web.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Starts (again) on the same port and data; when it scrapes, returns once every target has
    /// been scraped since.
    pub fn restart(&mut self) {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        self.start_process();
        if let Some(exporters) = &self.exporters {
            wait_scraped(&self.url(), exporters.targets, since);
        }
    }

    /// Starts the process and waits until it is ready. A port another process took since
    /// `free_port` handed it out (tests run in parallel processes, and outbound connections take
    /// ports too) is replaced on the first start; on a restart the port must stay.
    fn start_process(&mut self) {
        let first_start = self.child.is_none() && !self.log.exists();
        for _ in 0..5 {
            match self.try_start_process() {
                Ok(()) => return,
                Err(log) if first_start && log.contains("address already in use") => {
                    self.port = free_port();
                }
                Err(log) => panic!("Prometheus did not become ready; log:\n{log}"),
            }
        }
        panic!("Prometheus found no free port in 5 tries");
    }

    /// Starts the process; the log if it exits or is not ready within `PATIENCE`.
    fn try_start_process(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(&self.log).unwrap();
        let mut command = Command::new("prometheus");
        if let Some((web_config, _)) = &self.web {
            command.arg(format!("--web.config.file={}", web_config.display()));
        }
        let child = command
            .arg(format!("--config.file={}", self.config.display()))
            .arg(format!("--storage.tsdb.path={}", self.data.display()))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus is installed (make deps)");
        self.child = Some(child);
        let curl_args = self
            .web
            .as_ref()
            .map(|(_, args)| args.clone())
            .unwrap_or_default();
        let ready = format!("{}/-/ready", self.url());
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if wait_http_ok_with(&ready, &curl_args, Duration::from_millis(500)) {
                return Ok(());
            }
            let exited = (self.child.as_mut()).is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                self.child = None;
                break;
            }
        }
        self.stop();
        Err(std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running VictoriaMetrics (Debian's package) loaded with the same fixture data.
pub struct VictoriaMetrics {
    pub port: u16,
    child: Child,
    /// The fixture cluster's exporters it scrapes, if it scrapes.
    exporters: Option<Exporters>,
}

impl VictoriaMetrics {
    /// Starts the fixture cluster's exporters and VictoriaMetrics scraping them with the same
    /// scrape config Prometheus gets; returns once every target has been scraped.
    pub fn scraping(dir: &Path, scrape: Scrape) -> Self {
        let exporters = Exporters::start(&dir.join("cluster"), &scrape);
        let mut vm = Self::spawn(
            dir,
            &[
                format!("-promscrape.config={}", exporters.config.display()),
                // Answer with the newest samples (by default the last 30s are left out of queries).
                "-search.latencyOffset=0s".to_owned(),
                // Istio's series carry more than 30 labels, past which VictoriaMetrics drops some.
                "-maxLabelsPerTimeseries=64".to_owned(),
            ],
        );
        wait_scraped(&vm.url(), exporters.targets, 0.0);
        vm.exporters = Some(exporters);
        vm
    }

    /// Starts VictoriaMetrics and imports the fixture data through its Prometheus-text import API.
    pub fn start(dir: &Path) -> Self {
        Self::importing(dir, generate_data(dir))
    }

    /// Starts VictoriaMetrics and imports an OpenMetrics file through the Prometheus-text import
    /// API.
    fn importing(dir: &Path, om: PathBuf) -> Self {
        // Prometheus text format with millisecond timestamps.
        let om = std::fs::read_to_string(om).unwrap();
        let text: String = om
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (rest, ts) = l.rsplit_once(' ').unwrap();
                format!("{rest} {}000\n", ts)
            })
            .collect();
        Self::importing_text(dir, &text)
    }

    /// Starts VictoriaMetrics and imports Prometheus text (millisecond timestamps).
    pub fn importing_text(dir: &Path, text: &str) -> Self {
        let vm = Self::spawn(dir, &[]);
        let import = dir.join("import.prom");
        std::fs::write(&import, text).unwrap();
        let status = Command::new("curl")
            .args(["-fsS", "--data-binary"])
            .arg(format!("@{}", import.display()))
            .arg(format!("{}/api/v1/import/prometheus", vm.url()))
            .status()
            .unwrap();
        assert!(status.success(), "import failed");
        let _ = Command::new("curl")
            .args(["-fsS", &format!("{}/internal/force_flush", vm.url())])
            .status();
        vm
    }

    /// Starts the server with `extra` flags and waits for its health check.
    fn spawn(dir: &Path, extra: &[String]) -> Self {
        let port = free_port();
        let log = std::fs::File::create(dir.join("victoria.log")).unwrap();
        let child = Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.join("vm").display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-retentionPeriod=100y")
            .arg("-search.disableCache")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("victoria-metrics is installed (make deps)");
        let vm = VictoriaMetrics {
            port,
            child,
            exporters: None,
        };
        assert!(
            wait_http_ok(&format!("{}/health", vm.url()), PATIENCE),
            "VictoriaMetrics did not start"
        );
        vm
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The adapter binary, serving HTTPS on loopback with `--standalone`.
pub struct Adapter {
    pub port: u16,
    child: Child,
    pub log: PathBuf,
    home: PathBuf,
}

impl Adapter {
    /// Starts the adapter against `prometheus_url` with a rules file, and waits for `/readyz`.
    pub fn start(dir: &Path, rules: &Path, prometheus_url: &str, extra: &[&str]) -> Self {
        Self::start_with(
            dir,
            rules,
            prometheus_url,
            &[&["--standalone"], extra].concat(),
        )
    }

    /// Starts the adapter with `--standalone` and waits only until it serves (`/livez`): for what
    /// it answers before its first discovery.
    pub fn start_serving(dir: &Path, rules: &Path, prometheus_url: &str, extra: &[&str]) -> Self {
        let (port, args) = Self::args(
            dir,
            rules,
            prometheus_url,
            &[&["--standalone"], extra].concat(),
        );
        Self::spawn(dir, port, &args, &[], "/livez")
    }

    /// Everything the adapter has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts the adapter against a cluster given by a kubeconfig (no `--standalone`).
    pub fn start_in_cluster(
        dir: &Path,
        rules: &Path,
        prometheus_url: &str,
        kubeconfig: &Path,
        extra: &[&str],
    ) -> Self {
        let flag = format!("--lister-kubeconfig={}", kubeconfig.display());
        Self::start_with(
            dir,
            rules,
            prometheus_url,
            // Tests listen on loopback only (cluster mode would bind every address).
            &[&[flag.as_str(), "--bind-address=127.0.0.1"], extra].concat(),
        )
    }

    fn start_with(dir: &Path, rules: &Path, prometheus_url: &str, extra: &[&str]) -> Self {
        let (port, args) = Self::args(dir, rules, prometheus_url, extra);
        Self::start_exactly(dir, port, &args, &[])
    }

    /// A free port, and the arguments to serve on it with these rules, the tests' defaults and
    /// `extra` (which replace the defaults they name).
    fn args(dir: &Path, rules: &Path, prometheus_url: &str, extra: &[&str]) -> (u16, Vec<String>) {
        let port = free_port();
        let mut args = vec![
            format!("--config={}", rules.display()),
            format!("--prometheus-url={prometheus_url}"),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", dir.join("certs").display()),
        ];
        args.extend(
            [
                ("--metrics-relist-interval", "2s"),
                ("--metrics-max-age", "1h"),
                ("--prometheus-timeout", "20s"),
                // The tests compare values with a Prometheus that started seconds ago, where a
                // rate a step earlier has fewer samples: they evaluate at the request time,
                // except those about the step, which set their own.
                ("--query-time-step", "0"),
            ]
            .iter()
            .filter(|(flag, _)| !extra.iter().any(|e| e.starts_with(flag)))
            .map(|(flag, value)| format!("{flag}={value}")),
        );
        args.extend(extra.iter().map(|e| e.to_string()));
        (port, args)
    }

    /// Starts the binary with exactly `args` (which must make it serve on `port`) and extra
    /// environment variables, and waits for `/readyz`.
    pub fn start_exactly(dir: &Path, port: u16, args: &[String], env: &[(&str, &Path)]) -> Self {
        Self::spawn(dir, port, args, env, "/readyz")
    }

    /// Starts the binary and waits until `path` answers 200.
    fn spawn(dir: &Path, port: u16, args: &[String], env: &[(&str, &Path)], path: &str) -> Self {
        let log_path = dir.join(format!("adapter-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_prom-adapter"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let adapter = Adapter {
            port,
            child,
            log: log_path,
            home,
        };
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if adapter.curl(path).0 == 200 {
                return adapter;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "adapter not ready; log:\n{}",
            std::fs::read_to_string(&adapter.log).unwrap_or_default()
        );
    }

    /// The adapter's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `within` for the process to exit on its own.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// GET with curl: (status, body).
    pub fn curl(&self, path: &str) -> (u16, String) {
        self.curl_method("GET", path)
    }

    /// Any method with curl: (status, body).
    pub fn curl_method(&self, method: &str, path: &str) -> (u16, String) {
        self.curl_with(&["-X", method], path)
    }

    /// GET with extra curl arguments (e.g. `-H`, `-D -`), as the user of token `test` (which the
    /// stand-in apiserver knows; `--standalone` ignores it): (status, output).
    pub fn curl_with(&self, extra: &[&str], path: &str) -> (u16, String) {
        self.curl_raw(
            &[&["-H", "Authorization: Bearer test"], extra].concat(),
            path,
        )
    }

    /// GET with exactly these curl arguments (no credentials unless given): (status, output).
    pub fn curl_raw(&self, extra: &[&str], path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-ks", "--max-time", "60", "-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("https://127.0.0.1:{}{}", self.port, path))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// `kubectl get --raw PATH` with a real kubectl: (success, stdout, stderr).
    pub fn kubectl_raw(&self, path: &str) -> (bool, String, String) {
        self.kubectl(&["get", "--raw", path])
    }

    /// Any kubectl command against the adapter, with token `test`: (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(kubectl())
            .env("HOME", &self.home)
            .args([
                "--server",
                &format!("https://127.0.0.1:{}", self.port),
                "--insecure-skip-tls-verify",
                "--token",
                "test",
            ])
            .args(args)
            .output()
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `kubectl get --raw PATH`, parsed as JSON; panics on failure.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (ok, out, err) = self.kubectl_raw(path);
        assert!(
            ok,
            "kubectl get --raw {path} failed: {err}\nadapter log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{path}: {e}: {out}"))
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The commented-out rule of a rules file (the block after `marker`), uncommented.
pub fn commented_rule(text: &str, marker: &str) -> String {
    let start = text.find(marker).unwrap_or_else(|| panic!("no {marker:?}"));
    text[start..]
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("# - seriesQuery"))
        .take_while(|l| l.trim_start().starts_with('#'))
        .map(|l| {
            let l = l.trim_start().trim_start_matches('#');
            l.strip_prefix(' ').unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The honorLabels: true variant of `config/ingress-nginx.yaml`, as a rules file: the rule for
/// series that keep ingress-nginx's own label names (also those `gen_openmetrics.py` writes).
pub fn ingress_rules_honoring_labels() -> String {
    format!(
        "rules:\n{}\n",
        commented_rule(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ingress-nginx.yaml")
            )
            .unwrap(),
            "honorLabels: true"
        )
    )
}

/// A pinned kubectl binary (not the version-dispatching wrapper).
pub fn kubectl() -> PathBuf {
    for candidate in [
        "/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
        "/usr/lib/google-cloud-sdk/bin/kubectl.1.32",
    ] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    PathBuf::from("kubectl")
}

/// Parses a Kubernetes quantity as the adapter prints it (`10999m`, `25k`, `100Mi`, `3`).
pub fn quantity(text: &str) -> f64 {
    let suffixes = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<f64>().unwrap() * factor;
        }
    }
    text.parse().unwrap()
}

/// Asserts `actual` is within 3% of `expected`. Rates over scraped data are that close, not
/// exact: rate() extrapolates to the end of its window only while the newest sample is within 1.1
/// scrape intervals, so a query just before a late scrape sees up to half an interval plus the
/// scrape's delay less of the window (2-3 s of [2m] on a loaded machine).
pub fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= expected.abs() * 0.03 + 1e-9,
        "{what}: {actual} is not ≈ {expected}"
    );
}

/// Writes a CA, a server certificate for 127.0.0.1 and a client certificate, all as PEM files.
pub fn write_pki(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Distinct subjects: with rcgen's shared default name OpenSSL would take leaves for self-signed.
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "prom-adapter test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    for (name, sans, usage) in [
        (
            "server",
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ),
        (
            "client",
            vec!["prom-adapter".to_owned()],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ),
    ] {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params.extended_key_usages = vec![usage];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    std::fs::write(dir.join("other-ca.crt"), other.pem()).unwrap();
}

/// The fenced blocks of `language` in the section under `heading` (up to the next heading of the
/// same or a higher level) of `page`, the README or a page of `docs/` (`"docs/rules.md"`).
pub fn doc_blocks(page: &str, heading: &str, language: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(page)).unwrap();
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("{page} has no {heading:?}"))
        + 1;
    let level = heading.split(' ').next().unwrap();
    let body = &readme[start + heading.len()..];
    let end = body
        .match_indices("\n#")
        .find(|(i, _)| {
            let hashes = body[i + 1..].split(' ').next().unwrap_or_default();
            hashes.chars().all(|c| c == '#') && hashes.len() <= level.len()
        })
        .map_or(body.len(), |(i, _)| i);
    let section = &body[..end];
    let fence = format!("```{language}\n");
    section
        .split(&fence)
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_owned())
        .collect()
}
