//! Fewer Prometheus queries for the same answers: identical queries in flight are merged, answers are kept for a short TTL, evaluation times are rounded down to a step (so replicas and repeated callers share answers), and calls wait in a bounded queue for a bounded number of slots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

use super::{BackendError, MetricsBackend};
use crate::model::{QueryResult, SeriesShape};
use crate::telemetry::Metrics;

/// How the queries to one backend are shared and limited.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySharing {
    /// How long an answer is served again; zero keeps none (in-flight merging stays on).
    pub ttl: Duration,
    /// Instant queries are evaluated at the request time rounded down to this step; zero keeps
    /// the request time.
    pub time_step: Duration,
    /// Calls running at once.
    pub max_concurrent: usize,
    /// Calls waiting for a slot; past it a call fails at once as unavailable.
    pub max_queued: usize,
    /// How long a call may wait for a slot.
    pub queue_timeout: Duration,
}

/// Answers kept at most; past it, new answers are merged while in flight but not kept.
const MAX_ENTRIES: usize = 10_000;
/// An answer with more samples than this is not kept (it would hold memory for one caller).
const MAX_KEPT_SAMPLES: usize = 10_000;

type Answer = Result<QueryResult, BackendError>;

struct Entry {
    answer: Arc<OnceCell<Answer>>,
    created: Instant,
}

/// The state every worker's backend shares: the answers, and the slots of the backend.
pub struct SharedQueries {
    settings: QuerySharing,
    entries: Mutex<HashMap<(String, i64), Entry>>,
    slots: Semaphore,
    queued: AtomicUsize,
    metrics: Arc<Metrics>,
}

impl SharedQueries {
    /// Shared state for one backend.
    pub fn new(settings: QuerySharing, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            slots: Semaphore::new(settings.max_concurrent.max(1)),
            settings,
            entries: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
            metrics,
        })
    }

    /// `backend` (one worker's client) behind the shared answers and slots.
    pub fn backend(self: &Arc<Self>, backend: Arc<dyn MetricsBackend>) -> SharedBackend {
        SharedBackend {
            shared: self.clone(),
            inner: backend,
        }
    }

    /// The evaluation time for a request at `time`.
    fn evaluation_time(&self, time: f64) -> f64 {
        let step = self.settings.time_step.as_secs_f64();
        if step > 0.0 {
            (time / step).floor() * step
        } else {
            time
        }
    }

    /// The cell holding the answer to `key`: a kept or in-flight one, or a new one.
    fn cell(&self, key: &(String, i64)) -> Arc<OnceCell<Answer>> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get(key) {
            match entry.answer.get() {
                None => {
                    self.metrics.record_query_sharing("merged");
                    return entry.answer.clone();
                }
                Some(Ok(_)) if now.duration_since(entry.created) < self.settings.ttl => {
                    self.metrics.record_query_sharing("hit");
                    return entry.answer.clone();
                }
                Some(_) => {}
            }
        }
        self.metrics.record_query_sharing("miss");
        let answer = Arc::new(OnceCell::new());
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.settings.ttl;
            entries.retain(|_, e| e.answer.get().is_none() || now.duration_since(e.created) < ttl);
        }
        if entries.len() < MAX_ENTRIES {
            entries.insert(
                key.clone(),
                Entry {
                    answer: answer.clone(),
                    created: now,
                },
            );
        }
        answer
    }

    /// Forgets `answer` for `key` when it should not be served again: a failure, an answer too
    /// large to keep, or no TTL.
    fn settle(&self, key: &(String, i64), answer: &Arc<OnceCell<Answer>>) {
        let keep = match answer.get() {
            Some(Ok(QueryResult::Vector(samples))) => samples.len() <= MAX_KEPT_SAMPLES,
            Some(Ok(_)) => true,
            _ => false,
        };
        if keep && !self.settings.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries
            .get(key)
            .is_some_and(|e| Arc::ptr_eq(&e.answer, answer))
        {
            entries.remove(key);
        }
    }

    /// Runs `call` in a slot, waiting in the bounded queue for one.
    async fn limited<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let permit = match self.slots.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                if self.queued.fetch_add(1, Ordering::SeqCst) >= self.settings.max_queued {
                    self.queued.fetch_sub(1, Ordering::SeqCst);
                    self.metrics.record_queue_rejection();
                    return Err(BackendError::Unavailable(format!(
                        "{} Prometheus calls are running and {} waiting (--prometheus-max-concurrent-queries, --prometheus-max-queued-queries)",
                        self.settings.max_concurrent, self.settings.max_queued
                    )));
                }
                self.metrics.set_queued(self.queued.load(Ordering::SeqCst));
                let waited =
                    tokio::time::timeout(self.settings.queue_timeout, self.slots.acquire()).await;
                let queued = self.queued.fetch_sub(1, Ordering::SeqCst) - 1;
                self.metrics.set_queued(queued);
                match waited {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        self.metrics.record_queue_rejection();
                        return Err(BackendError::Unavailable(format!(
                            "no Prometheus call slot within {:?}",
                            self.settings.queue_timeout
                        )));
                    }
                }
            }
        };
        let result = call.await;
        drop(permit);
        result
    }
}

/// One worker's backend behind the shared answers and slots.
pub struct SharedBackend {
    shared: Arc<SharedQueries>,
    inner: Arc<dyn MetricsBackend>,
}

impl MetricsBackend for SharedBackend {
    fn series_shapes<'a>(
        &'a self,
        selector: &'a str,
        start: f64,
        end: f64,
    ) -> BoxFuture<'a, Result<(Vec<SeriesShape>, u64), BackendError>> {
        Box::pin(
            self.shared
                .limited(self.inner.series_shapes(selector, start, end)),
        )
    }

    fn label_values<'a>(
        &'a self,
        label: &'a str,
        selector: &'a str,
        start: f64,
        end: f64,
    ) -> BoxFuture<'a, Result<Vec<String>, BackendError>> {
        Box::pin(
            self.shared
                .limited(self.inner.label_values(label, selector, start, end)),
        )
    }

    fn query<'a>(
        &'a self,
        promql: &'a str,
        time: f64,
    ) -> BoxFuture<'a, Result<QueryResult, BackendError>> {
        Box::pin(async move {
            let time = self.shared.evaluation_time(time);
            let key = (promql.to_owned(), (time * 1000.0).round() as i64);
            let answer = self.shared.cell(&key);
            // If the caller that runs the query goes away, the next waiter runs it.
            let result = answer
                .get_or_init(|| self.shared.limited(self.inner.query(promql, time)))
                .await
                .clone();
            self.shared.settle(&key, &answer);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sample;
    use crate::provider::fake::FakeBackend;

    const QUERY: &str = "sum(up)";

    fn settings(ttl: u64, step: u64) -> QuerySharing {
        QuerySharing {
            ttl: Duration::from_secs(ttl),
            time_step: Duration::from_secs(step),
            max_concurrent: 4,
            max_queued: 8,
            queue_timeout: Duration::from_secs(5),
        }
    }

    fn fake(delay: Duration) -> Arc<FakeBackend> {
        let backend = FakeBackend {
            delay,
            ..FakeBackend::default()
        };
        backend.queries.lock().unwrap().insert(
            QUERY.to_owned(),
            Ok(QueryResult::Scalar(Sample {
                labels: HashMap::new(),
                value: 1.0,
                timestamp: 0.0,
            })),
        );
        Arc::new(backend)
    }

    fn calls(backend: &FakeBackend) -> usize {
        backend.seen_queries.lock().unwrap().len()
    }

    #[tokio::test(start_paused = true)]
    async fn identical_queries_in_flight_make_one_call() {
        let inner = fake(Duration::from_millis(100));
        let shared = SharedQueries::new(settings(0, 0), Arc::new(Metrics::new()));
        // Two workers' backends share the answers.
        let (a, b) = (shared.backend(inner.clone()), shared.backend(inner.clone()));
        let answers = futures_util::future::join_all(
            (0..10).map(|i| if i % 2 == 0 { &a } else { &b }.query(QUERY, 1000.0)),
        )
        .await;
        assert!(answers.iter().all(|a| a.is_ok()));
        assert_eq!(calls(&inner), 1);
        // Without a TTL nothing is kept: the next query runs again.
        a.query(QUERY, 1000.0).await.unwrap();
        assert_eq!(calls(&inner), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_kept_for_the_ttl_and_times_share_a_step() {
        let inner = fake(Duration::ZERO);
        let shared = SharedQueries::new(settings(5, 5), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        backend.query(QUERY, 1000.0).await.unwrap();
        backend.query(QUERY, 1004.9).await.unwrap();
        assert_eq!(calls(&inner), 1, "1000 and 1004.9 share the step from 1000");
        assert_eq!(
            inner.seen_query_times.lock().unwrap()[0],
            1000.0,
            "evaluated at the step"
        );
        backend.query(QUERY, 1005.0).await.unwrap();
        assert_eq!(calls(&inner), 2, "the next step is another answer");
        tokio::time::advance(Duration::from_secs(6)).await;
        backend.query(QUERY, 1005.0).await.unwrap();
        assert_eq!(calls(&inner), 3, "past the TTL the answer is fetched again");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_shared_in_flight_but_not_kept() {
        let inner = fake(Duration::from_millis(50));
        inner.queries.lock().unwrap().insert(
            QUERY.to_owned(),
            Err(BackendError::Unavailable("down".into())),
        );
        let shared = SharedQueries::new(settings(5, 0), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        let (first, second) =
            futures_util::join!(backend.query(QUERY, 1.0), backend.query(QUERY, 1.0));
        assert!(first.is_err() && second.is_err());
        assert_eq!(calls(&inner), 1);
        assert!(backend.query(QUERY, 1.0).await.is_err());
        assert_eq!(calls(&inner), 2, "a failure is asked again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_caller_hands_the_query_to_the_next_waiter() {
        let inner = fake(Duration::from_millis(100));
        let shared = SharedQueries::new(settings(5, 0), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        let first = backend.query(QUERY, 1.0);
        let waiter = backend.query(QUERY, 1.0);
        // The first caller gives up half-way.
        let dropped = tokio::time::timeout(Duration::from_millis(50), first);
        let (dropped, answer) = futures_util::join!(dropped, waiter);
        assert!(dropped.is_err());
        assert!(answer.is_ok());
        assert_eq!(calls(&inner), 2, "the waiter sent the query itself");
    }

    #[tokio::test(start_paused = true)]
    async fn calls_past_the_slots_and_queue_fail_as_unavailable() {
        let inner = fake(Duration::from_secs(1));
        let shared = SharedQueries::new(
            QuerySharing {
                max_concurrent: 1,
                max_queued: 1,
                queue_timeout: Duration::from_millis(1500),
                ..settings(0, 0)
            },
            Arc::new(Metrics::new()),
        );
        let backend = shared.backend(inner.clone());
        let answers = futures_util::future::join_all(
            ["a", "b", "c"].map(|selector| backend.label_values("pod", selector, 0.0, 1.0)),
        )
        .await;
        // One runs, one waits its turn (within the 1.5 s wait), one is refused at once.
        assert!(answers[0].is_ok() && answers[1].is_ok(), "{answers:?}");
        assert!(
            matches!(&answers[2], Err(BackendError::Unavailable(m)) if m.contains("waiting")),
            "{answers:?}"
        );
        // A wait longer than the queue timeout is refused too.
        let answers = futures_util::future::join_all([0.5, 0.5].map(|_| async {
            let wait = Duration::from_millis(500);
            let shared = SharedQueries::new(
                QuerySharing {
                    max_concurrent: 1,
                    max_queued: 4,
                    queue_timeout: wait,
                    ..settings(0, 0)
                },
                Arc::new(Metrics::new()),
            );
            let backend = shared.backend(inner.clone());
            futures_util::join!(
                backend.label_values("pod", "x", 0.0, 1.0),
                backend.label_values("pod", "y", 0.0, 1.0)
            )
        }))
        .await;
        for (first, second) in answers {
            assert!(first.is_ok());
            assert!(
                matches!(&second, Err(BackendError::Unavailable(m)) if m.contains("no Prometheus call slot")),
                "{second:?}"
            );
        }
    }
}
