//! A flood of GETs from many connections at once, counted by answer: the attacker of the hardening
//! test and of the flood benchmark.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Each connection's loop; stops between requests when told.
pub struct Flood {
    loops: Vec<tokio::task::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    answers: Arc<Mutex<BTreeMap<u16, usize>>>,
}

/// What the flood got: requests sent, and how many got each status (0: no answer).
#[derive(Debug, Clone)]
pub struct FloodAnswers {
    pub sent: usize,
    pub by_status: BTreeMap<u16, usize>,
}

/// A token no cluster knows, a new one for every request.
pub fn random_token(connection: usize, request: usize) -> Option<String> {
    Some(format!("random-{connection}-{request}"))
}

/// No `Authorization` header at all.
pub fn no_token(_: usize, _: usize) -> Option<String> {
    None
}

impl Flood {
    /// Starts `connections` loops, each sending GET `url` again as soon as the last answered, with
    /// the bearer token `token(connection, request number)` gives.
    pub fn start(
        client: &reqwest::Client,
        url: &str,
        connections: usize,
        token: fn(usize, usize) -> Option<String>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(Mutex::new(BTreeMap::new()));
        let loops = (0..connections)
            .map(|connection| {
                let (client, url) = (client.clone(), url.to_owned());
                let (stop, sent, answers) = (stop.clone(), sent.clone(), answers.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let n = sent.fetch_add(1, Ordering::Relaxed);
                        let mut request = client.get(&url);
                        if let Some(token) = token(connection, n) {
                            request = request.bearer_auth(token);
                        }
                        let status = match request.send().await {
                            Ok(response) => response.status().as_u16(),
                            Err(_) => 0,
                        };
                        *answers.lock().unwrap().entry(status).or_default() += 1;
                    }
                })
            })
            .collect();
        Flood {
            loops,
            stop,
            sent,
            answers,
        }
    }

    /// Requests sent so far.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops every loop after its request in flight, and counts the answers.
    pub async fn stop(self) -> FloodAnswers {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.loops {
            task.await.unwrap();
        }
        FloodAnswers {
            sent: self.sent.load(Ordering::Relaxed),
            by_status: self.answers.lock().unwrap().clone(),
        }
    }
}
