//! The review caches and the single-flight table: bounded maps of answers with expiry, and one
//! review per distinct question however many requests ask it at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

/// A map of answers that expire, holding at most `capacity` entries. When it is full of live
/// entries a new answer is simply not kept: the cache can only make requests cheaper, and an
/// attacker filling it must not evict the answers legitimate clients depend on.
pub(super) struct Cache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub(super) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, v)| v.clone())
    }

    pub(super) fn put(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        // A TTL flag of a thousand years must not overflow the clock.
        let ttl = ttl.min(Duration::from_secs(365 * 24 * 3600));
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let now = Instant::now();
            entries.retain(|_, (until, _)| *until > now);
            if entries.len() >= self.capacity {
                return;
            }
        }
        entries.insert(key, (Instant::now() + ttl, value));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

type Flight<V> = Shared<BoxFuture<'static, V>>;

/// In-flight reviews by question. The first request to ask starts the review as its own task
/// (so that it finishes, and leaves the table, even when every asker has gone); later askers
/// wait for the same answer.
pub(super) struct Flights<K, V: Clone> {
    running: Arc<Mutex<HashMap<K, Flight<V>>>>,
    /// What the askers get when the review task was lost (it panicked, or its runtime stopped).
    lost: fn() -> V,
}

/// Takes a flight out of the table when its task ends, however it ends.
struct Leave<K: Hash + Eq, V: Clone> {
    table: Arc<Mutex<HashMap<K, Flight<V>>>>,
    key: K,
}

impl<K: Hash + Eq, V: Clone> Drop for Leave<K, V> {
    fn drop(&mut self) {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// Whether a request started a review or joined one.
pub(super) enum Joined<V: Clone> {
    /// An identical review was already running: its answer.
    Existing(Flight<V>),
    /// No review was running; the caller may start one with `Flights::start`.
    Vacant,
}

impl<K, V> Flights<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(super) fn new(lost: fn() -> V) -> Self {
        Self {
            running: Arc::new(Mutex::new(HashMap::new())),
            lost,
        }
    }

    /// The running review for `key`, if there is one.
    pub(super) fn join(&self, key: &K) -> Joined<V> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.get(key) {
            Some(flight) => Joined::Existing(flight.clone()),
            None => Joined::Vacant,
        }
    }

    /// Starts `review` for `key` (or joins the one another request started meanwhile). The
    /// review removes itself from the table when it ends, after `review` has stored its answer
    /// wherever it keeps answers, so a later request finds either the answer or the flight.
    pub(super) fn start(
        &self,
        key: K,
        review: impl Future<Output = V> + Send + 'static,
    ) -> Flight<V> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(flight) = running.get(&key) {
            return flight.clone();
        }
        let leave = Leave {
            table: self.running.clone(),
            key: key.clone(),
        };
        let task = tokio::spawn(async move {
            let _leave = leave;
            review.await
        });
        let lost = self.lost;
        let flight = async move { task.await.unwrap_or_else(|_| lost()) }
            .boxed()
            .shared();
        running.insert(key, flight.clone());
        flight
    }

    /// How many reviews are running.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_full_cache_keeps_what_it_has() {
        let cache = Cache::new(2);
        cache.put("a", 1, Duration::from_secs(60));
        cache.put("b", 2, Duration::from_secs(60));
        cache.put("c", 3, Duration::from_secs(60));
        assert_eq!((cache.get(&"a"), cache.get(&"c")), (Some(1), None));
        assert_eq!(cache.len(), 2);
        // Expired entries make room.
        let cache = Cache::new(1);
        cache.put("a", 1, Duration::from_nanos(1));
        std::thread::sleep(Duration::from_millis(2));
        cache.put("b", 2, Duration::from_secs(60));
        assert_eq!(cache.get(&"b"), Some(2));
    }

    #[tokio::test]
    async fn identical_questions_share_one_review() {
        let flights: Arc<Flights<&'static str, u32>> = Arc::new(Flights::new(|| 0));
        let reviews = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let mut askers = Vec::new();
        for _ in 0..50 {
            let flights = flights.clone();
            let reviews = reviews.clone();
            let mut released = released.clone();
            askers.push(tokio::spawn(async move {
                let flight = match flights.join(&"token") {
                    Joined::Existing(flight) => flight,
                    Joined::Vacant => flights.start("token", async move {
                        reviews.fetch_add(1, Ordering::SeqCst);
                        let _ = released.wait_for(|r| *r).await;
                        7
                    }),
                };
                flight.await
            }));
        }
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for asker in askers {
            assert_eq!(asker.await.unwrap(), 7);
        }
        assert_eq!(reviews.load(Ordering::SeqCst), 1);
        assert_eq!(flights.len(), 0, "a finished review leaves the table");
    }

    #[tokio::test(start_paused = true)]
    async fn a_review_finishes_when_its_askers_have_gone() {
        let flights: Flights<&'static str, u32> = Flights::new(|| 0);
        let flight = flights.start("token", async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            1
        });
        drop(flight);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_review_that_panics_leaves_the_table_and_answers_lost() {
        let flights: Flights<&'static str, u32> = Flights::new(|| 99);
        let flight = flights.start("token", async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            panic!("a review bug")
        });
        assert_eq!(flight.await, 99);
        assert_eq!(flights.len(), 0, "the next request starts a new review");
        assert_eq!(flights.start("token", async { 1 }).await, 1);
    }
}
