//! A recording HTTP/1.1 proxy in front of a real Prometheus: it keeps each request (line, headers,
//! body) for assertions, and can answer queries itself with a body of any size (fault injection).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What the proxy saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request line's target and the body, percent-decoded: what a query said.
    pub fn decoded(&self) -> String {
        let text = format!("{} {}", self.target, String::from_utf8_lossy(&self.body));
        percent_encoding::percent_decode_str(&text.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    }
}

/// A running proxy.
#[derive(Clone)]
pub struct RecordingProxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// When set, `/api/v1/query` is answered with this body instead of Prometheus's, with no
    /// declared length (as Prometheus streams large answers), so a client must count as it reads.
    query_answer: Arc<Mutex<Option<Arc<Vec<u8>>>>>,
}

impl RecordingProxy {
    /// Starts in front of the Prometheus on `upstream_port`.
    pub fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = RecordingProxy {
            port: listener.local_addr().unwrap().port(),
            seen: Arc::default(),
            query_answer: Arc::default(),
        };
        let shared = proxy.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = shared.forward_one(client, upstream_port);
                });
            }
        });
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Answers instant queries with `body` (a 200 JSON answer) from now on; `None` forwards again.
    pub fn answer_queries_with(&self, body: Option<Vec<u8>>) {
        *self.query_answer.lock().unwrap() = body.map(Arc::new);
    }

    fn forward_one(&self, client: TcpStream, upstream_port: u16) -> std::io::Result<()> {
        let mut reader = BufReader::new(client.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let mut parts = request_line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut headers = Vec::new();
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        self.seen.lock().unwrap().push(Seen {
            method: method.clone(),
            target: target.clone(),
            headers: headers.clone(),
            body: body.clone(),
        });
        let mut client = client;
        let injected = self.query_answer.lock().unwrap().clone();
        if let Some(answer) = injected.filter(|_| target.starts_with("/api/v1/query")) {
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
            client.write_all(head.as_bytes())?;
            // A client that stops reading early ends the write with an error; that is expected.
            for chunk in answer.chunks(64 * 1024) {
                if client.write_all(chunk).is_err() {
                    break;
                }
            }
            return client.shutdown(std::net::Shutdown::Both);
        }
        let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
        let mut head = format!("{method} {target} HTTP/1.1\r\n");
        for (k, v) in &headers {
            if !k.eq_ignore_ascii_case("connection") {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        head.push_str("Connection: close\r\n\r\n");
        upstream.write_all(head.as_bytes())?;
        upstream.write_all(&body)?;
        let mut response = Vec::new();
        upstream.read_to_end(&mut response)?;
        client.write_all(&response)?;
        client.shutdown(std::net::Shutdown::Both)
    }
}
