//! How many reviews run at once, per client (an address for TokenReviews, a user for
//! SubjectAccessReviews) and overall: a request waits (without using the CPU) for a place, up to
//! its deadline; past a bounded queue it is refused, slowly, so that a flood parks itself instead
//! of spinning the server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

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

/// Who a review is for, for the bound per client: the address a TokenReview's token came from
/// (its user is not known yet), or the user a SubjectAccessReview asks about (through
/// kube-apiserver's aggregator every request comes from one address).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum ClientKey {
    Address(std::net::IpAddr),
    User(String),
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::Address(address) => write!(f, "address {address}"),
            ClientKey::User(user) => write!(f, "user {user:?}"),
        }
    }
}

/// The places: `per_client` for each client, `overall` for everyone.
pub(super) struct ReviewLimits {
    per_client: usize,
    overall: Arc<Semaphore>,
    overall_size: usize,
    clients: Mutex<HashMap<ClientKey, Arc<Client>>>,
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

    fn client(&self, source: &ClientKey) -> Arc<Client> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= CLIENT_TABLE_CLEANUP {
            let full = self.per_client;
            clients.retain(|_, c| Arc::strong_count(c) > 1 || c.slots.available_permits() < full);
        }
        clients
            .entry(source.clone())
            .or_insert_with(|| {
                Arc::new(Client {
                    slots: Arc::new(Semaphore::new(self.per_client)),
                    waiting: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Waits until `deadline` for a place for `client` (none: only the overall bound).
    pub(super) async fn acquire(
        &self,
        client: Option<&ClientKey>,
        deadline: Instant,
    ) -> Result<Place, Refused> {
        let wait = async {
            let held = match client {
                Some(key) => {
                    let client = self.client(key);
                    let queued = client.waiting.fetch_add(1, Ordering::SeqCst);
                    let permit = if queued >= self.per_client * WAITING_PER_SLOT {
                        None
                    } else {
                        tokio::time::timeout_at(deadline, client.slots.clone().acquire_owned())
                            .await
                            .ok()
                            .and_then(Result::ok)
                    };
                    client.waiting.fetch_sub(1, Ordering::SeqCst);
                    match permit {
                        Some(permit) => Some(permit),
                        None => {
                            return Err(Refused(format!(
                                "too many authentication or authorization reviews in flight for {key} (at most {} at once); retry later",
                                self.per_client
                            )));
                        }
                    }
                }
                None => None,
            };
            match tokio::time::timeout_at(deadline, self.overall.clone().acquire_owned()).await {
                Ok(Ok(overall)) => Ok(Place {
                    _client: held,
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
    use std::net::IpAddr;

    fn soon(seconds: u64) -> Instant {
        Instant::now() + Duration::from_secs(seconds)
    }

    #[tokio::test(start_paused = true)]
    async fn one_client_waits_for_its_places_and_others_do_not() {
        let limits = Arc::new(ReviewLimits::new(2, 8));
        let attacker = ClientKey::Address(IpAddr::from([10, 0, 0, 1]));
        let first = limits.acquire(Some(&attacker), soon(5)).await.unwrap();
        let _second = limits.acquire(Some(&attacker), soon(5)).await.unwrap();
        // A third waits for one of them...
        let waiting = {
            let limits = limits.clone();
            let attacker = attacker.clone();
            tokio::spawn(async move { limits.acquire(Some(&attacker), soon(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        // ...while another client gets a place at once.
        let started = Instant::now();
        let other = limits
            .acquire(Some(&ClientKey::User("hpa".into())), soon(5))
            .await;
        assert!(other.is_ok() && started.elapsed().is_zero());
        drop(first);
        assert!(waiting.await.unwrap().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_queue_or_the_deadline_a_request_is_refused_slowly() {
        let limits = Arc::new(ReviewLimits::new(1, 8));
        let source = ClientKey::Address(IpAddr::from([10, 0, 0, 1]));
        let _held = limits.acquire(Some(&source), soon(5)).await.unwrap();
        let started = Instant::now();
        let refused = limits.acquire(Some(&source), soon(2)).await;
        assert!(refused.is_err_and(|r| r.0.contains("address 10.0.0.1")));
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(3),
            "the deadline, then the delay"
        );
        // Fill the queue: four requests may wait per place.
        let queued: Vec<_> = (0..4)
            .map(|_| {
                let limits = limits.clone();
                let source = source.clone();
                tokio::spawn(async move { limits.acquire(Some(&source), soon(60)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let started = Instant::now();
        assert!(limits.acquire(Some(&source), soon(60)).await.is_err());
        assert_eq!(started.elapsed(), REFUSAL_DELAY, "refused without waiting");
        drop(queued);
    }
}
