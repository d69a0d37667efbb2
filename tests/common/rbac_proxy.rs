//! A stand-in for kube-rbac-proxy in front of a real Prometheus: HTTPS on loopback, a bearer token
//! it accepts (401 otherwise), optionally a client certificate it requires, and every request
//! passed on to Prometheus over HTTP. Users reach Thanos Querier or Prometheus this way with
//! prometheus-adapter's `--prometheus-auth-config` and `--prometheus-auth-incluster`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};

struct State {
    upstream: String,
    /// Tokens accepted, and every token presented.
    accepted: Mutex<Vec<String>>,
    presented: Mutex<Vec<String>>,
    http: reqwest::Client,
}

/// A running proxy; stops when dropped.
pub struct RbacProxy {
    pub port: u16,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

impl RbacProxy {
    /// Serves with `pki`'s server certificate (see `write_pki`), in front of `upstream`; when
    /// `client_certificates` is set, a handshake without a certificate from `pki`'s CA fails.
    pub fn start(pki: &Path, upstream: String, token: &str, client_certificates: bool) -> Self {
        prom_adapter_serve::server::install_crypto_provider();
        let state = Arc::new(State {
            upstream,
            accepted: Mutex::new(vec![token.to_owned()]),
            presented: Mutex::default(),
            http: reqwest::Client::new(),
        });
        let tls = server_tls(pki, client_certificates);
        let port = super::free_port();
        let shared = state.clone();
        let handle = super::serve_https_on_a_thread(port, tls, move |app| {
            app.app_data(web::Data::new(shared.clone()))
                .default_service(web::to(forward));
        });
        RbacProxy {
            port,
            state,
            handle,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Accepts `token` from now on, in place of the previous one (a rotated token).
    pub fn accept_only(&self, token: &str) {
        *self.state.accepted.lock().unwrap() = vec![token.to_owned()];
    }

    /// The bearer tokens presented so far, in order.
    pub fn presented(&self) -> Vec<String> {
        self.state.presented.lock().unwrap().clone()
    }
}

impl Drop for RbacProxy {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)));
    }
}

fn server_tls(pki: &Path, client_certificates: bool) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(pki.join("server.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.join("server.key")).unwrap();
    let builder = rustls::ServerConfig::builder();
    let builder = if client_certificates {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(pki.join("ca.crt")).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder.with_single_cert(chain, key).unwrap()
}

async fn forward(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<State>>,
) -> HttpResponse {
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    state.presented.lock().unwrap().push(token.clone());
    if !state.accepted.lock().unwrap().contains(&token) {
        return HttpResponse::Unauthorized().body("Unauthorized");
    }
    let url = format!(
        "{}{}?{}",
        state.upstream,
        request.path(),
        request.query_string()
    );
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut upstream = state.http.request(method, url).body(body.to_vec());
    if let Some(kind) = request.headers().get("content-type") {
        upstream = upstream.header("content-type", kind.as_bytes());
    }
    match upstream.send().await {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let bytes = answer.bytes().await.unwrap_or_default();
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                .content_type("application/json")
                .body(bytes)
        }
        Err(e) => HttpResponse::BadGateway().body(e.to_string()),
    }
}
