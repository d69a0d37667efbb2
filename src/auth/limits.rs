//! How many reviews run at once, per client address and overall: a request waits (without using
//! the CPU) for a place, up to a deadline; past a bounded queue it is refused, slowly, so that a
//! flood from one address parks itself instead of spinning the server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many requests of one client may wait for a place, per place it may hold.
const WAITING_PER_SLOT: usize = 4;
/// How long a refused request is held before its 429 goes out: about the `Retry-After` it
/// carries, so that a client looping on refusals costs no CPU.
const REFUSAL_DELAY: Duration = Duration::from_secs(1);
/// Entries of idle clients are dropped once the table is this large.
const CLIENT_TABLE_CLEANUP: usize = 4096;

/// Why a request got no place to run a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refused(pub(super) String);

struct Client {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// The places: `per_client` for each address, `overall` for everyone.
pub(super) struct ReviewLimits {
    per_client: usize,
    overall: Arc<Semaphore>,
    overall_size: usize,
    clients: Mutex<HashMap<IpAddr, Arc<Client>>>,
}

/// A place held; it is given back when dropped (when the review ends).
pub(super) struct Place {
    _client: Option<OwnedSemaphorePermit>,
    _overall: OwnedSemaphorePermit,
}

impl ReviewLimits {
    pub(super) fn new(per_client: usize, overall: usize) -> Self {
        Self {
            per_client: per_client.max(1),
            overall: Arc::new(Semaphore::new(overall.max(1))),
            overall_size: overall.max(1),
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, source: IpAddr) -> Arc<Client> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= CLIENT_TABLE_CLEANUP {
            let full = self.per_client;
            clients.retain(|_, c| Arc::strong_count(c) > 1 || c.slots.available_permits() < full);
        }
        clients
            .entry(source)
            .or_insert_with(|| {
                Arc::new(Client {
                    slots: Arc::new(Semaphore::new(self.per_client)),
                    waiting: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Waits up to `deadline` for a place for `source` (no address: only the overall bound).
    pub(super) async fn acquire(
        &self,
        source: Option<IpAddr>,
        deadline: Duration,
    ) -> Result<Place, Refused> {
        let wait = async {
            let client = match source {
                Some(source) => {
                    let client = self.client(source);
                    let queued = client.waiting.fetch_add(1, Ordering::SeqCst);
                    let permit = if queued >= self.per_client * (1 + WAITING_PER_SLOT) {
                        None
                    } else {
                        tokio::time::timeout(deadline, client.slots.clone().acquire_owned())
                            .await
                            .ok()
                            .and_then(Result::ok)
                    };
                    client.waiting.fetch_sub(1, Ordering::SeqCst);
                    match permit {
                        Some(permit) => Some(permit),
                        None => {
                            return Err(Refused(format!(
                                "too many authentication or authorization reviews in flight for {source} (at most {} at once); retry later",
                                self.per_client
                            )));
                        }
                    }
                }
                None => None,
            };
            match tokio::time::timeout(deadline, self.overall.clone().acquire_owned()).await {
                Ok(Ok(overall)) => Ok(Place {
                    _client: client,
                    _overall: overall,
                }),
                _ => Err(Refused(format!(
                    "too many authentication or authorization reviews in flight (at most {} at once); retry later",
                    self.overall_size
                ))),
            }
        };
        let answer = wait.await;
        if answer.is_err() {
            tokio::time::sleep(REFUSAL_DELAY).await;
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_client_waits_for_its_places_and_others_do_not() {
        let limits = Arc::new(ReviewLimits::new(2, 8));
        let attacker = Some(IpAddr::from([10, 0, 0, 1]));
        let first = limits
            .acquire(attacker, Duration::from_secs(5))
            .await
            .unwrap();
        let _second = limits
            .acquire(attacker, Duration::from_secs(5))
            .await
            .unwrap();
        // A third waits for one of them...
        let waiting = {
            let limits = limits.clone();
            tokio::spawn(async move { limits.acquire(attacker, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        // ...while another client gets a place at once.
        let started = tokio::time::Instant::now();
        let other = limits
            .acquire(Some(IpAddr::from([10, 0, 0, 2])), Duration::from_secs(5))
            .await;
        assert!(other.is_ok() && started.elapsed().is_zero());
        drop(first);
        assert!(waiting.await.unwrap().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_queue_or_the_deadline_a_request_is_refused_slowly() {
        let limits = Arc::new(ReviewLimits::new(1, 8));
        let source = Some(IpAddr::from([10, 0, 0, 1]));
        let _held = limits
            .acquire(source, Duration::from_secs(5))
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let refused = limits.acquire(source, Duration::from_secs(2)).await;
        assert!(refused.is_err_and(|r| r.0.contains("10.0.0.1")));
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(3),
            "deadline, then the delay"
        );
        // Fill the queue: 1 place × (1 + 4) requests may wait.
        let queued: Vec<_> = (0..5)
            .map(|_| {
                let limits = limits.clone();
                tokio::spawn(async move { limits.acquire(source, Duration::from_secs(60)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let started = tokio::time::Instant::now();
        assert!(
            limits
                .acquire(source, Duration::from_secs(60))
                .await
                .is_err()
        );
        assert_eq!(started.elapsed(), REFUSAL_DELAY, "refused without waiting");
        drop(queued);
    }
}
