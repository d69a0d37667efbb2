//! The HTTPS server: binding, TLS handshake limits, signals and graceful shutdown; the serving certificate and client-certificate CAs in the submodules.

mod client_ca;
mod tls;

pub use client_ca::{CaBundles, ClientAuthority, ClientCas};
pub use tls::{ServingCertificate, ServingTls, TlsPolicy, TlsSource, tls_config};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, middleware, web};

use crate::api::{self, AppState};
use prom_adapter_provider::discovery::Health;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate or key file could not be read or parsed.
    #[error("cannot load {what} from {path}: {reason}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Only one of the certificate and key files was given.
    #[error("--tls-cert-file and --tls-private-key-file must be given together")]
    HalfPair,
    /// The self-signed certificate could not be generated or written.
    #[error("cannot create a self-signed certificate in --cert-dir {dir}: {reason}")]
    SelfSigned {
        /// The directory.
        dir: String,
        /// What went wrong.
        reason: String,
    },
    /// `--tls-min-version` or `--tls-cipher-suites` names something unknown.
    #[error("{0}")]
    TlsFlag(String),
    /// rustls rejected the certificate/key pair.
    #[error("invalid TLS certificate or key: {0}")]
    Tls(#[from] rustls::Error),
    /// Binding or serving failed.
    #[error("cannot serve on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

/// How the server stops on SIGTERM or SIGINT.
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    /// How long readiness fails before the server stops accepting connections.
    pub delay: Duration,
    /// How long in-flight requests may take to finish after that.
    pub drain: Duration,
}

/// How many TLS handshakes may be in progress, and for how long each: enough room that
/// connections which never finish a handshake cannot make real clients wait.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeLimits {
    /// How long a client may take to complete its handshake.
    pub timeout: Duration,
    /// Handshakes in progress at once, over all workers.
    pub max_concurrent: usize,
}

/// Serves the API over HTTPS. On SIGTERM or SIGINT, readiness turns false first, then after
/// `shutdown.delay` the server stops accepting and drains in-flight requests for up to
/// `shutdown.drain`. `worker_state` runs once on each worker thread, so that each worker can own
/// its outbound connections.
pub async fn serve(
    worker_state: impl Fn() -> AppState + Send + Clone + 'static,
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    peers: Arc<ClientAuthority>,
    health: Arc<Health>,
    shutdown: Shutdown,
    handshakes: HandshakeLimits,
) -> Result<(), Error> {
    // actix counts handshakes per worker; it starts one worker per available core.
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(worker_state()))
            .wrap(middleware::from_fn(api::guard))
            .wrap(middleware::from_fn(api::observe))
            .configure(api::configure)
    })
    .on_connect(move |connection, extensions| {
        // The verified client certificate's identity, for the auth middleware.
        type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
        let identity = connection
            .downcast_ref::<Tls>()
            .and_then(|tls| tls.get_ref().1.peer_certificates())
            .and_then(|chain| peers.identify(chain));
        if let Some(identity) = identity {
            extensions.insert(identity);
        }
    })
    .disable_signals()
    // Answers are small and go out whole: no waiting for the previous segment's ACK (Go's
    // servers, kube-apiserver among them, set this too).
    .tcp_nodelay(true)
    .workers(workers)
    .tls_handshake_timeout(handshakes.timeout)
    .max_connection_rate(handshakes.max_concurrent.div_ceil(workers).max(1))
    .shutdown_timeout(shutdown.drain.as_secs())
    .bind_rustls_0_23(addr, tls)
    .map_err(|source| Error::Bind { addr, source })?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let signal = termination_signal().await;
        health.begin_shutdown();
        tracing::info!(signal, delay = ?shutdown.delay, "shutting down: readiness fails, then in-flight requests drain");
        actix_web::rt::time::sleep(shutdown.delay).await;
        handle.stop(true).await;
    });
    tracing::info!(%addr, "serving HTTPS");
    server.await.map_err(|source| Error::Bind { addr, source })
}

/// Waits for SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C) and names it.
async fn termination_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        // Without signal handlers there is nothing to wait for but the process being killed.
        _ => std::future::pending().await,
    }
}

/// Installs ring as rustls' process-wide crypto provider (call once, first thing).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
