//! Fewer Prometheus queries for the same answers: identical queries in flight are merged, answers are kept for a short TTL, evaluation times are rounded down to a step (so replicas and repeated callers share answers; while a new step's answer is asked, the previous step's is served; a periodic caller's next answer is asked ahead of it), and calls wait for a bounded number of slots in a bounded queue, in turn per client (`fair_slots`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::fair_slots::{FairSlots, Refused};
use super::{BackendError, MetricsBackend};
use prom_adapter_core::model::{QueryResult, SeriesShape};
use prom_adapter_telemetry::Metrics;

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
/// Bytes kept at most over every entry, its query text (the key) and its answer: the cache's
/// memory bound. Keys count too, so that long queries cannot grow it past the bound.
const MAX_KEPT_BYTES: usize = 100 << 20;
/// The most one answer may take of `MAX_KEPT_BYTES`: a larger answer is served, not kept, so
/// one request cannot push every other answer out.
const MAX_ANSWER_BYTES: usize = MAX_KEPT_BYTES / 16;

/// What is shared and kept: an instant query's result, or a label's values (the object names
/// `--standalone` reads from Prometheus for `*` requests).
#[derive(Clone)]
enum Answered {
    Query(QueryResult),
    Values(Arc<Vec<String>>),
}

type Answer = Result<Answered, BackendError>;

/// A call to the backend that owns what it needs, so that it can also run in the background.
type Call = BoxFuture<'static, Answer>;

/// What a caller gets for a key.
enum Found {
    /// The cell to await: kept (hit), in flight (merged) or new (miss, the caller runs the call).
    Cell(Arc<OnceCell<Answer>>),
    /// The previous step's kept answer, served at once; `refresh`, when set, is this step's new
    /// cell, whose call the caller starts in the background.
    Previous {
        answer: Answered,
        refresh: Option<Arc<OnceCell<Answer>>>,
    },
}

/// What an answer takes in memory, near enough: its labels' text and a fixed cost per sample
/// and per label (the map's and the strings' own sizes), or its values' text and a fixed cost
/// each.
fn answer_bytes(answer: &Answered) -> usize {
    match answer {
        Answered::Query(result) => result_bytes(result),
        Answered::Values(values) => values.iter().map(|v| 24 + v.len()).sum(),
    }
}

fn result_bytes(answer: &QueryResult) -> usize {
    const PER_SAMPLE: usize = 64;
    const PER_LABEL: usize = 64;
    let sample_bytes = |sample: &prom_adapter_core::model::Sample| {
        PER_SAMPLE
            + (sample.labels.iter())
                .map(|(name, value)| PER_LABEL + name.len() + value.len())
                .sum::<usize>()
    };
    match answer {
        QueryResult::Vector(samples) => samples.iter().map(sample_bytes).sum(),
        QueryResult::Scalar(sample) => sample_bytes(sample),
        _ => PER_SAMPLE,
    }
}

struct Entry {
    answer: Arc<OnceCell<Answer>>,
    created: Instant,
    /// Bytes this entry holds (counted in `Kept::bytes`): its key's, and once settled and kept,
    /// its answer's.
    bytes: usize,
    /// Settled: its answer is counted.
    kept: bool,
}

/// How the requests for one query have come: periodic callers (the HPA controller asks for each
/// HPA's metric once per sync) are asked for ahead of their next request.
struct Rhythm {
    /// The last request's time (Unix milliseconds).
    last_ms: i64,
    /// The interval before it, if it was at least a step.
    period_ms: Option<i64>,
    /// When it came, for dropping rhythms no one follows any more.
    seen: Instant,
}

/// The longest period a caller is asked ahead for.
const MAX_PERIOD_MS: i64 = 300_000;
/// Rhythms followed at most; past it, new queries are not asked ahead.
const MAX_RHYTHMS: usize = MAX_ENTRIES;

/// The answers, kept and in flight, and the rhythms of their callers, under one lock.
#[derive(Default)]
struct Kept {
    entries: HashMap<(String, i64), Entry>,
    /// Bytes of every entry.
    bytes: usize,
    /// When expired answers were last dropped.
    swept: Option<Instant>,
    /// By the query text's hash: a rhythm takes a few words, whatever the query's length.
    rhythms: HashMap<u64, Rhythm>,
    hasher: std::hash::RandomState,
}

/// When to ask ahead of a periodic caller: at `at_ms` (Unix milliseconds), for the step its next
/// request will fall in (`step_ms`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ahead {
    at_ms: i64,
    step_ms: i64,
}

impl Kept {
    fn remove(&mut self, key: &(String, i64)) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= entry.bytes;
        }
    }

    /// Drops answers older than `keep_for`, at most once per `keep_for`.
    fn sweep(&mut self, now: Instant, keep_for: Duration) {
        if self
            .swept
            .is_some_and(|at| now.duration_since(at) < keep_for)
        {
            return;
        }
        self.swept = Some(now);
        let mut freed = 0;
        self.entries.retain(|_, e| {
            let keep = e.answer.get().is_none() || now.duration_since(e.created) < keep_for;
            if !keep {
                freed += e.bytes;
            }
            keep
        });
        self.bytes -= freed;
        let longest = Duration::from_millis(MAX_PERIOD_MS as u64);
        (self.rhythms).retain(|_, r| now.duration_since(r.seen) <= longest);
    }
}

/// The state every worker's backend shares: the answers, and the slots of the backend.
pub struct SharedQueries {
    /// The backend's name in `/metrics`.
    name: Arc<str>,
    settings: QuerySharing,
    kept: Mutex<Kept>,
    slots: FairSlots,
    metrics: Arc<Metrics>,
}

impl SharedQueries {
    /// Shared state for the default backend (`--prometheus-url`).
    pub fn new(settings: QuerySharing, metrics: Arc<Metrics>) -> Arc<Self> {
        Self::named("default", settings, metrics)
    }

    /// Shared state for the backend called `name`.
    pub fn named(name: &str, settings: QuerySharing, metrics: Arc<Metrics>) -> Arc<Self> {
        metrics.init_backend(name);
        Arc::new(Self {
            name: Arc::from(name),
            slots: FairSlots::new(settings.max_concurrent, settings.max_queued),
            settings,
            kept: Mutex::new(Kept::default()),
            metrics,
        })
    }

    /// `backend` (one worker's client) behind the shared answers and slots.
    pub fn backend(self: &Arc<Self>, backend: Arc<dyn MetricsBackend>) -> SharedBackend {
        self.scoped_backend(backend, String::new())
    }

    /// `backend` for one tenant (`scope`) of a backend: it shares the backend's slots, and its
    /// answers are kept apart from other tenants' under the same query text.
    pub fn scoped_backend(
        self: &Arc<Self>,
        backend: Arc<dyn MetricsBackend>,
        scope: String,
    ) -> SharedBackend {
        SharedBackend {
            shared: self.clone(),
            inner: backend,
            scope,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // Nothing panics while the lock is held, and no update is left half-done.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long answers stay in memory: the TTL, and with a step one step more, so that the
    /// previous step's answer is there when a step begins.
    fn keep_for(&self) -> Duration {
        match self.settings.ttl.is_zero() {
            true => Duration::ZERO,
            false => self.settings.ttl + self.settings.time_step,
        }
    }

    /// The answer to `key`, asked at `asked_ms` (Unix milliseconds, before rounding to the step):
    /// a kept or in-flight cell, or a new one; or, while this step's answer is not there yet,
    /// the previous step's answer if it may still be served. With it, when to ask ahead of the
    /// caller's next request, if its requests come periodically.
    fn find(&self, key: &(String, i64), asked_ms: i64) -> (Found, Option<Ahead>) {
        let now = Instant::now();
        let (found, result, ahead) = {
            let mut kept = self.lock();
            kept.sweep(now, self.keep_for());
            let ahead = self.follow(&mut kept, &key.0, asked_ms, now);
            let (found, result) = match kept.entries.get(key) {
                Some(entry) if entry.answer.get().is_none() => {
                    match self.previous_answer(&kept, key, asked_ms) {
                        Some(answer) => (
                            Found::Previous {
                                answer,
                                refresh: None,
                            },
                            "previous",
                        ),
                        None => (Found::Cell(entry.answer.clone()), "merged"),
                    }
                }
                Some(entry)
                    if matches!(entry.answer.get(), Some(Ok(_)))
                        && now.duration_since(entry.created) < self.settings.ttl =>
                {
                    (Found::Cell(entry.answer.clone()), "hit")
                }
                _ => {
                    kept.remove(key);
                    let answer = Arc::new(OnceCell::new());
                    let bytes = key.0.len();
                    let room =
                        kept.entries.len() < MAX_ENTRIES && kept.bytes + bytes <= MAX_KEPT_BYTES;
                    if room {
                        let entry = Entry {
                            answer: answer.clone(),
                            created: now,
                            bytes,
                            kept: false,
                        };
                        kept.entries.insert(key.clone(), entry);
                        kept.bytes += bytes;
                    }
                    // A new step's call runs in the background only if later callers find it in
                    // flight; otherwise each would start another.
                    let previous = room.then(|| self.previous_answer(&kept, key, asked_ms));
                    match previous.flatten() {
                        Some(previous) => (
                            Found::Previous {
                                answer: previous,
                                refresh: Some(answer),
                            },
                            "previous",
                        ),
                        None => (Found::Cell(answer), "miss"),
                    }
                }
            };
            (found, result, ahead)
        };
        self.metrics.record_query_sharing(&self.name, result);
        (found, ahead)
    }

    /// Notes a request for `text` at `asked_ms`; when the interval since the previous request
    /// repeats the one before (within half a step) and is at most `MAX_PERIOD_MS`, the caller
    /// is periodic: its next request is expected one interval later, and its answer is asked
    /// in that request's step, half the TTL (or step) before it, or half-way from the step's
    /// start for a request early in its step, so that the request finds it kept. Requests less than a step apart (other callers of a shared query) are not
    /// intervals.
    fn follow(&self, kept: &mut Kept, text: &str, asked_ms: i64, now: Instant) -> Option<Ahead> {
        let step = self.settings.time_step.as_millis() as i64;
        let ttl = self.settings.ttl.as_millis() as i64;
        if step == 0 || ttl == 0 {
            return None;
        }
        let id = std::hash::BuildHasher::hash_one(&kept.hasher, text);
        let Some(rhythm) = kept.rhythms.get_mut(&id) else {
            if kept.rhythms.len() < MAX_RHYTHMS {
                let rhythm = Rhythm {
                    last_ms: asked_ms,
                    period_ms: None,
                    seen: now,
                };
                kept.rhythms.insert(id, rhythm);
            }
            return None;
        };
        let interval = asked_ms - rhythm.last_ms;
        if interval < step {
            return None;
        }
        let periodic = (rhythm.period_ms).is_some_and(|p| (interval - p).abs() <= step / 2);
        *rhythm = Rhythm {
            last_ms: asked_ms,
            period_ms: Some(interval),
            seen: now,
        };
        if !periodic || interval > MAX_PERIOD_MS {
            return None;
        }
        let next_ms = asked_ms + interval;
        let step_ms = next_ms.div_euclid(step) * step;
        // Half the TTL ahead, but for a request early in its step, half-way between the step's
        // start and it: asking every such caller right at the start would be a burst each step.
        let lead = (ttl.min(step) / 2).min((next_ms - step_ms) / 2);
        Some(Ahead {
            at_ms: next_ms - lead,
            step_ms,
        })
    }

    /// A new cell for `key` to be asked ahead, unless its answer is kept or in flight already,
    /// or there is no room to keep it.
    fn reserve(&self, key: &(String, i64)) -> Option<Arc<OnceCell<Answer>>> {
        let now = Instant::now();
        let mut kept = self.lock();
        kept.sweep(now, self.keep_for());
        if let Some(entry) = kept.entries.get(key) {
            let fresh = now.duration_since(entry.created) < self.settings.ttl;
            if entry.answer.get().is_none() || (fresh && matches!(entry.answer.get(), Some(Ok(_))))
            {
                return None;
            }
        }
        kept.remove(key);
        let bytes = key.0.len();
        if kept.entries.len() >= MAX_ENTRIES || kept.bytes + bytes > MAX_KEPT_BYTES {
            return None;
        }
        let answer = Arc::new(OnceCell::new());
        let entry = Entry {
            answer: answer.clone(),
            created: now,
            bytes,
            kept: false,
        };
        kept.entries.insert(key.clone(), entry);
        kept.bytes += bytes;
        drop(kept);
        self.metrics.record_query_sharing(&self.name, "ahead");
        Some(answer)
    }

    /// The answer kept for the step before `key`'s, for a request asked at `asked_ms` within the
    /// TTL of `key`'s step: evaluated less than TTL + step before the request, the staleness
    /// bound kept answers have.
    fn previous_answer(&self, kept: &Kept, key: &(String, i64), asked_ms: i64) -> Option<Answered> {
        let step = self.settings.time_step.as_millis() as i64;
        let ttl = self.settings.ttl.as_millis() as i64;
        if step == 0 || ttl == 0 || asked_ms >= key.1 + ttl {
            return None;
        }
        let entry = kept.entries.get(&(key.0.clone(), key.1 - step))?;
        match entry.answer.get() {
            Some(Ok(answer)) => Some(answer.clone()),
            _ => None,
        }
    }

    /// After a caller is done with `answer` (answered, failed, or dropped): keeps it for the
    /// TTL if it is an answer within the memory bound, and forgets it otherwise. An answer still
    /// unset is forgotten when no one else waits for it (the last caller went away), so that an
    /// abandoned query does not stay in flight forever.
    fn settle(&self, key: &(String, i64), answer: &Arc<OnceCell<Answer>>) {
        let mut kept = self.lock();
        let Some(entry) = kept.entries.get(key) else {
            return;
        };
        if !Arc::ptr_eq(&entry.answer, answer) || entry.kept {
            return;
        }
        let bytes = match answer.get() {
            // The map's reference and the caller's: no one else waits.
            None if Arc::strong_count(answer) <= 2 => None,
            None => return,
            Some(Ok(answered)) => Some(answer_bytes(answered)),
            Some(Err(_)) => None,
        };
        match bytes {
            Some(n)
                if !self.settings.ttl.is_zero()
                    && n <= MAX_ANSWER_BYTES
                    && kept.bytes + n <= MAX_KEPT_BYTES =>
            {
                kept.bytes += n;
                if let Some(entry) = kept.entries.get_mut(key) {
                    entry.bytes += n;
                    entry.kept = true;
                }
            }
            _ => kept.remove(key),
        }
    }

    /// Runs `call` in a slot, waiting in the bounded queue for one (in turn with other
    /// clients' calls, see `fair_slots`).
    async fn limited<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let name = &self.name;
        // Shows the queue's length again however the wait ends (the caller may go away).
        let gauge = QueueGauge(self);
        let acquired = self
            .slots
            .acquire(self.settings.queue_timeout, |queued| {
                self.metrics.set_queued(name, queued)
            })
            .await;
        drop(gauge);
        let slot = acquired.map_err(|refused| {
            self.metrics.record_queue_rejection(name);
            BackendError::Unavailable(match refused {
                Refused::QueueFull => format!(
                    "{} Prometheus calls are running and {} waiting (--prometheus-max-concurrent-queries, --prometheus-max-queued-queries)",
                    self.settings.max_concurrent, self.settings.max_queued
                ),
                Refused::ClientShare { share } => format!(
                    "this client already has {share} Prometheus calls waiting, half of --prometheus-max-queued-queries"
                ),
                Refused::TimedOut => format!(
                    "no Prometheus call slot within {:?}",
                    self.settings.queue_timeout
                ),
            })
        })?;
        let result = call.await;
        drop(slot);
        result
    }
}

/// Sets the queued calls gauge when dropped.
struct QueueGauge<'s>(&'s SharedQueries);

impl Drop for QueueGauge<'_> {
    fn drop(&mut self) {
        let shared = self.0;
        shared
            .metrics
            .set_queued(&shared.name, shared.slots.queued());
    }
}

/// Settles a caller's answer when the caller is done with it, including when it is dropped.
struct Settle<'a> {
    shared: &'a SharedQueries,
    key: (String, i64),
    answer: Arc<OnceCell<Answer>>,
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        self.shared.settle(&self.key, &self.answer);
    }
}

/// One worker's backend behind the shared answers and slots.
pub struct SharedBackend {
    shared: Arc<SharedQueries>,
    inner: Arc<dyn MetricsBackend>,
    /// Prefixes the keys of kept answers: the tenant, for a backend with several.
    scope: String,
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
        Box::pin(async move {
            // The window ends at the step, as queries are evaluated, and keeps its length.
            let until = self.shared.evaluation_time(end);
            let from = until - (end - start);
            let text = format!("label_values\u{1f}{label}\u{1f}{selector}");
            let length = until - from;
            let call = |until: f64| -> Call {
                let inner = self.inner.clone();
                let (label, selector) = (label.to_owned(), selector.to_owned());
                Box::pin(async move {
                    (inner
                        .label_values(&label, &selector, until - length, until)
                        .await)
                        .map(|values| Answered::Values(Arc::new(values)))
                })
            };
            match self.shared_call(text, end, until, call).await? {
                Answered::Values(values) => Ok(values.as_ref().clone()),
                Answered::Query(_) => Err(mixed_up()),
            }
        })
    }

    fn query<'a>(
        &'a self,
        promql: &'a str,
        time: f64,
    ) -> BoxFuture<'a, Result<QueryResult, BackendError>> {
        Box::pin(async move {
            let asked = time;
            let time = self.shared.evaluation_time(asked);
            let call = |time: f64| -> Call {
                let (inner, promql) = (self.inner.clone(), promql.to_owned());
                Box::pin(async move { (inner.query(&promql, time).await).map(Answered::Query) })
            };
            match self
                .shared_call(format!("query\u{1f}{promql}"), asked, time, call)
                .await?
            {
                Answered::Query(result) => Ok(result),
                Answered::Values(_) => Err(mixed_up()),
            }
        })
    }
}

/// Keys name their kind, so an answer is always of the kind asked; should that ever fail, the
/// request fails rather than the process.
fn mixed_up() -> BackendError {
    BackendError::Failed("the shared answer for this call is of another kind".into())
}

impl SharedBackend {
    /// The answer to `text` (which names its kind) at `time` (the step of `asked`, the request's
    /// time): kept, in flight, or got by `call` (which evaluates at the time it is given) in a
    /// slot, and settled for others. While this step's answer is asked (by this caller, in the
    /// background, or by another), the previous step's kept answer is served at once. A
    /// periodic caller's next answer is asked ahead of its next request.
    async fn shared_call(
        &self,
        text: String,
        asked: f64,
        time: f64,
        call: impl Fn(f64) -> Call,
    ) -> Answer {
        let text = if self.scope.is_empty() {
            text
        } else {
            format!("{}\u{1f}{text}", self.scope)
        };
        let key = (text, (time * 1000.0).round() as i64);
        let asked_ms = (asked * 1000.0).round() as i64;
        let (found, ahead) = self.shared.find(&key, asked_ms);
        if let Some(ahead) = ahead {
            let call = call(ahead.step_ms as f64 / 1000.0);
            self.ask_ahead(key.0.clone(), asked_ms, ahead, call);
        }
        let answer = match found {
            Found::Cell(answer) => answer,
            Found::Previous { answer, refresh } => {
                if let Some(refresh) = refresh {
                    self.refresh_in_background(key, refresh, call(time));
                }
                return Ok(answer);
            }
        };
        // The only reference this caller holds, so that `settle` can tell whether others
        // still wait for an unset answer.
        let settle = Settle {
            shared: &self.shared,
            key,
            answer,
        };
        // If the caller that runs the call goes away, the next waiter runs it.
        let result = settle
            .answer
            .get_or_init(|| self.shared.limited(call(time)))
            .await
            .clone();
        drop(settle);
        result
    }

    /// Runs `call` for the new cell `answer` on its own task, as the current client, and
    /// settles it for the callers that come after.
    fn refresh_in_background(&self, key: (String, i64), answer: Arc<OnceCell<Answer>>, call: Call) {
        let shared = self.shared.clone();
        let client = super::fair_slots::current_client();
        tokio::spawn(async move {
            let refresh = async {
                let settle = Settle {
                    shared: &shared,
                    key,
                    answer,
                };
                settle.answer.get_or_init(|| shared.limited(call)).await;
            };
            super::fair_slots::as_client(&client, refresh).await;
        });
    }

    /// At `ahead.at_ms` (the request came at `asked_ms`), asks for `text` at `ahead.step_ms`
    /// with `call`, unless an answer for that step is kept or in flight by then; as the current
    /// client, on its own task.
    fn ask_ahead(&self, text: String, asked_ms: i64, ahead: Ahead, call: Call) {
        let shared = self.shared.clone();
        let client = super::fair_slots::current_client();
        let wait = Duration::from_millis((ahead.at_ms - asked_ms).max(0) as u64);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let key = (text, ahead.step_ms);
            let Some(answer) = shared.reserve(&key) else {
                return;
            };
            let asked = async {
                let settle = Settle {
                    shared: &shared,
                    key,
                    answer,
                };
                settle.answer.get_or_init(|| shared.limited(call)).await;
            };
            super::fair_slots::as_client(&client, asked).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeBackend;
    use prom_adapter_core::model::Sample;

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
        settle_background(Duration::ZERO).await;
        assert_eq!(calls(&inner), 2, "the next step is another answer");
        tokio::time::advance(Duration::from_secs(6)).await;
        backend.query(QUERY, 1005.0).await.unwrap();
        settle_background(Duration::ZERO).await;
        assert_eq!(calls(&inner), 3, "past the TTL the answer is fetched again");
    }

    /// Lets calls started in the background (each taking at most `delay`) finish; time is
    /// paused, so the sleep ends as soon as every task waits.
    async fn settle_background(delay: Duration) {
        tokio::time::sleep(delay + Duration::from_millis(1)).await;
    }

    fn scalar(value: f64) -> Result<QueryResult, BackendError> {
        Ok(QueryResult::Scalar(Sample {
            labels: HashMap::new(),
            value,
            timestamp: 0.0,
        }))
    }

    fn value(answer: Result<QueryResult, BackendError>) -> f64 {
        match answer {
            Ok(QueryResult::Scalar(sample)) => sample.value,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_steps_answer_is_asked_in_the_background_while_the_previous_is_served() {
        let inner = fake(Duration::from_secs(2));
        let shared = SharedQueries::new(settings(10, 10), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        assert_eq!(value(backend.query(QUERY, 1000.0).await), 1.0);
        inner
            .queries
            .lock()
            .unwrap()
            .insert(QUERY.into(), scalar(2.0));
        // The next step: served the previous step's answer at once (the backend takes 2 s),
        // while one call for the new step runs in the background.
        let started = Instant::now();
        let answers =
            futures_util::future::join_all((0..5).map(|_| backend.query(QUERY, 1012.0))).await;
        assert_eq!(started.elapsed(), Duration::ZERO, "no caller waited");
        assert!(answers.into_iter().all(|a| value(a) == 1.0));
        settle_background(Duration::from_secs(2)).await;
        assert_eq!(
            *inner.seen_query_times.lock().unwrap(),
            [1000.0, 1010.0],
            "one call for the new step, evaluated at it"
        );
        // Once there, the new step's answer is served.
        assert_eq!(value(backend.query(QUERY, 1013.0).await), 2.0);
        assert_eq!(calls(&inner), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_previous_steps_answer_is_served_only_within_the_ttl_of_the_new_step() {
        let inner = fake(Duration::from_secs(2));
        // A TTL shorter than the step: the previous step's answer may stand in for the first
        // 4 s of a step, so that it is never more than TTL + step (14 s) old.
        let shared = SharedQueries::new(settings(4, 10), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        backend.query(QUERY, 1000.0).await.unwrap();
        inner
            .queries
            .lock()
            .unwrap()
            .insert(QUERY.into(), scalar(2.0));
        // 5 s into the next step: the caller waits for the new answer.
        let started = Instant::now();
        assert_eq!(value(backend.query(QUERY, 1015.0).await), 2.0);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        // 1 s into the step after: the previous step's answer, at once.
        inner
            .queries
            .lock()
            .unwrap()
            .insert(QUERY.into(), scalar(3.0));
        let started = Instant::now();
        assert_eq!(value(backend.query(QUERY, 1021.0).await), 2.0);
        assert_eq!(started.elapsed(), Duration::ZERO);
        // Two steps after an answer, nothing stands in for it.
        settle_background(Duration::from_secs(2)).await;
        inner
            .queries
            .lock()
            .unwrap()
            .insert(QUERY.into(), scalar(4.0));
        assert_eq!(value(backend.query(QUERY, 1040.0).await), 4.0);
        // A failure is never served in a later step's place.
        inner.queries.lock().unwrap().insert(
            QUERY.to_owned(),
            Err(BackendError::Unavailable("down".into())),
        );
        assert!(backend.query(QUERY, 1100.0).await.is_err());
        inner
            .queries
            .lock()
            .unwrap()
            .insert(QUERY.into(), scalar(5.0));
        assert_eq!(value(backend.query(QUERY, 1110.0).await), 5.0);
        // Without a step there is no previous step.
        let shared = SharedQueries::new(settings(10, 0), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        backend.query(QUERY, 1000.0).await.unwrap();
        inner
            .queries
            .lock()
            .unwrap()
            .insert(QUERY.into(), scalar(6.0));
        assert_eq!(value(backend.query(QUERY, 1000.5).await), 6.0);
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_room_for_the_new_steps_answer_its_callers_wait_for_it() {
        let inner = fake(Duration::ZERO);
        let shared = SharedQueries::new(settings(10, 10), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        backend.query(QUERY, 1000.0).await.unwrap();
        for i in 1..MAX_ENTRIES {
            backend.query(&format!("q{i}"), 1000.0).await.unwrap();
        }
        // The cache is full: a background call for the next step could not be found in flight
        // by later callers (each would start another), so the caller asks and waits.
        let slow = fake(Duration::from_secs(2));
        let backend = shared.backend(slow.clone());
        let started = Instant::now();
        backend.query(QUERY, 1012.0).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(calls(&slow), 1);
    }

    /// Lets the paused clock run to `unix_time` (`first` was at `start`), every task running at
    /// its own timers on the way.
    async fn clock_at(start: Instant, unix_time: f64, first: f64) {
        tokio::time::sleep_until(start + Duration::from_secs_f64(unix_time - first)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_periodic_callers_next_answer_is_asked_ahead_and_its_request_finds_it_kept() {
        let inner = fake(Duration::from_secs(1));
        let shared = SharedQueries::new(settings(5, 5), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        let start = Instant::now();
        // An HPA syncing every 15 s: the first three requests each wait for their answer.
        for asked in [1003.0, 1018.0, 1033.0] {
            clock_at(start, asked, 1003.0).await;
            let began = Instant::now();
            backend.query(QUERY, asked).await.unwrap();
            assert_eq!(began.elapsed(), Duration::from_secs(1), "at {asked}");
        }
        // The third showed the period: the fourth's answer (its step, 1045) is asked 1.5 s before
        // it (half-way from the step's start), so the request finds it kept.
        clock_at(start, 1048.0, 1003.0).await;
        let began = Instant::now();
        backend.query(QUERY, 1048.0).await.unwrap();
        assert_eq!(began.elapsed(), Duration::ZERO);
        assert_eq!(
            *inner.seen_query_times.lock().unwrap(),
            [1000.0, 1015.0, 1030.0, 1045.0]
        );
        // When the caller stops, one answer is asked ahead for nothing, then no more.
        clock_at(start, 1200.0, 1003.0).await;
        assert_eq!(calls(&inner), 5);
        assert_eq!(inner.seen_query_times.lock().unwrap()[4], 1060.0);
    }

    #[tokio::test(start_paused = true)]
    async fn irregular_callers_and_callers_within_a_step_are_not_asked_ahead() {
        let inner = fake(Duration::ZERO);
        let shared = SharedQueries::new(settings(5, 5), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        let start = Instant::now();
        // Intervals of 15 s and 24 s: not a period.
        for asked in [1001.0, 1016.0, 1040.0] {
            clock_at(start, asked, 1001.0).await;
            backend.query(QUERY, asked).await.unwrap();
        }
        clock_at(start, 1100.0, 1001.0).await;
        assert_eq!(calls(&inner), 3);
        // Two callers of one query 2 s apart, each every 15 s: the 2 s gaps are not intervals, so
        // the two are one periodic caller, asked ahead once (1145) after the period shows.
        for asked in [1101.0, 1103.0, 1116.0, 1118.0, 1131.0, 1133.0] {
            clock_at(start, asked, 1001.0).await;
            backend.query(QUERY, asked).await.unwrap();
        }
        clock_at(start, 1300.0, 1001.0).await;
        let times = inner.seen_query_times.lock().unwrap().clone();
        assert_eq!(times[3..], [1100.0, 1115.0, 1130.0, 1145.0]);
        // Without a TTL nothing is asked ahead: nothing could keep it.
        let inner = fake(Duration::ZERO);
        let shared = SharedQueries::new(settings(0, 5), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        let start = Instant::now();
        for asked in [1001.0, 1016.0, 1031.0, 1046.0] {
            clock_at(start, asked, 1001.0).await;
            backend.query(QUERY, asked).await.unwrap();
        }
        clock_at(start, 1100.0, 1001.0).await;
        assert_eq!(calls(&inner), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_background_call_counts_for_the_client_whose_request_started_it() {
        let inner = fake(Duration::ZERO);
        let shared = SharedQueries::new(settings(10, 10), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        crate::fair_slots::as_client("hpa", backend.query(QUERY, 1000.0))
            .await
            .unwrap();
        crate::fair_slots::as_client("kubectl-user", backend.query(QUERY, 1010.0))
            .await
            .unwrap();
        settle_background(Duration::ZERO).await;
        assert_eq!(*inner.seen_clients.lock().unwrap(), ["hpa", "kubectl-user"]);
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
        let (first, second) = tokio::join!(backend.query(QUERY, 1.0), backend.query(QUERY, 1.0));
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
        let (dropped, answer) = tokio::join!(dropped, waiter);
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
            tokio::join!(
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

    #[tokio::test(start_paused = true)]
    async fn a_call_dropped_while_queued_leaves_the_queue() {
        let inner = fake(Duration::from_secs(1));
        let shared = SharedQueries::new(
            QuerySharing {
                max_concurrent: 1,
                max_queued: 1,
                ..settings(0, 0)
            },
            Arc::new(Metrics::new()),
        );
        let backend = shared.backend(inner.clone());
        let running = backend.label_values("pod", "a", 0.0, 1.0);
        // Given up on while waiting for the slot (a client that went away).
        let given_up = tokio::time::timeout(
            Duration::from_millis(100),
            backend.label_values("pod", "b", 0.0, 1.0),
        );
        let (running, given_up) = tokio::join!(running, given_up);
        assert!(running.is_ok() && given_up.is_err());
        assert_eq!(shared.slots.queued(), 0);
        // So the queue's one place is free again.
        let (first, second) = tokio::join!(
            backend.label_values("pod", "c", 0.0, 1.0),
            backend.label_values("pod", "d", 0.0, 1.0)
        );
        assert!(first.is_ok() && second.is_ok(), "{second:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_query_is_forgotten_and_kept_bytes_are_counted() {
        let inner = fake(Duration::from_secs(1));
        let shared = SharedQueries::new(settings(5, 0), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        let abandoned =
            tokio::time::timeout(Duration::from_millis(100), backend.query(QUERY, 1.0)).await;
        assert!(abandoned.is_err());
        assert_eq!(
            shared.lock().entries.len(),
            0,
            "no query left in flight forever"
        );

        let counts = || {
            let kept = shared.lock();
            (kept.entries.len(), kept.bytes)
        };
        backend.query(QUERY, 1.0).await.unwrap();
        // The key's text and one sample without labels.
        assert_eq!(counts(), (1, "query\u{1f}".len() + QUERY.len() + 64));
        tokio::time::advance(Duration::from_secs(6)).await;
        backend.query(QUERY, 2.0).await.unwrap();
        // The expired answer was swept; the new one is kept.
        assert_eq!(counts(), (1, "query\u{1f}".len() + QUERY.len() + 64));
    }

    #[tokio::test]
    async fn long_queries_count_their_text_and_an_answer_past_its_share_is_not_kept() {
        let inner = fake(Duration::ZERO);
        let long = format!("sum(up{{pod!~\"{}\"}})", "x".repeat(1 << 20));
        let huge: Vec<Sample> = (0..20_000)
            .map(|i| Sample {
                labels: HashMap::from([("pod".to_owned(), format!("{i:0>300}"))]),
                value: 1.0,
                timestamp: 0.0,
            })
            .collect();
        for (query, answer) in [(&long, Vec::new()), (&QUERY.to_owned(), huge)] {
            inner
                .queries
                .lock()
                .unwrap()
                .insert(query.clone(), Ok(QueryResult::Vector(answer.into())));
        }
        let shared = SharedQueries::new(settings(60, 0), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        backend.query(&long, 1.0).await.unwrap();
        assert_eq!(
            shared.lock().bytes,
            "query\u{1f}".len() + long.len(),
            "the key's bytes are counted"
        );
        // 20,000 samples of ~430 bytes: over a sixteenth of the budget. Served, not kept.
        let answer = backend.query(QUERY, 1.0).await.unwrap();
        assert!(matches!(answer, QueryResult::Vector(v) if v.len() == 20_000));
        assert_eq!(shared.lock().entries.len(), 1);
        backend.query(QUERY, 1.0).await.unwrap();
        assert_eq!(calls(&inner), 3, "the huge answer was asked again");
    }

    #[tokio::test(start_paused = true)]
    async fn label_values_are_shared_for_the_ttl_over_a_window_ending_at_the_step() {
        let inner = fake(Duration::ZERO);
        inner
            .labels
            .lock()
            .unwrap()
            .insert("pod".into(), vec!["a".into(), "b".into()]);
        let shared = SharedQueries::new(settings(5, 5), Arc::new(Metrics::new()));
        let backend = shared.backend(inner.clone());
        // Three requests within one step: one call, its window ending at the step.
        for now in [1003.0, 1004.0, 1004.9] {
            let names = backend
                .label_values("pod", "{__name__=\"x\"}", now - 600.0, now)
                .await;
            assert_eq!(names.unwrap(), ["a", "b"]);
        }
        assert_eq!(*inner.seen_labels.lock().unwrap(), [(400.0, 1000.0)]);
        // Another selector, or the next step once the TTL is over, asks again.
        backend
            .label_values("pod", "{__name__=\"y\"}", 404.0, 1004.0)
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        backend
            .label_values("pod", "{__name__=\"x\"}", 410.0, 1010.0)
            .await
            .unwrap();
        assert_eq!(inner.seen_labels.lock().unwrap().len(), 3);
    }
}
