//! A backend's call slots, handed out fairly: each client (the authenticated user a request came from) runs at most a quarter of the slots and holds at most half of the bounded queue, and a freed slot goes to the waiting clients in turn, so one client's burst cannot starve another's calls (in the spirit of kube-apiserver's API Priority and Fairness, with the user as the flow).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

tokio::task_local! {
    /// The client the current request's calls are made for.
    static CLIENT: Arc<str>;
}

/// Runs `work` with its backend calls counted as client `name`'s (the authenticated user).
/// Calls made outside any client (discovery, `--standalone`, unauthenticated paths) share the
/// anonymous client, which the per-client share of the queue does not bound.
pub async fn as_client<F: Future>(name: &str, work: F) -> F::Output {
    CLIENT.scope(Arc::from(name), work).await
}

/// The client the current task's calls count for, or the anonymous one (empty).
pub fn current_client() -> Arc<str> {
    // One anonymous name for every call outside a request, not an allocation per call.
    static ANONYMOUS: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
    CLIENT
        .try_with(Arc::clone)
        .unwrap_or_else(|_| ANONYMOUS.clone())
}

/// Why a call got no slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full.
    QueueFull,
    /// The client already holds its share of the queue.
    ClientShare {
        /// The share, in calls.
        share: usize,
    },
    /// No slot came free in time.
    TimedOut,
}

/// One waiting call.
struct Waiter {
    id: u64,
    grant: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    free: usize,
    queued: usize,
    next_id: u64,
    /// The most slots one named client holds at once.
    client_slots: usize,
    /// Slots each client holds.
    running: HashMap<Arc<str>, usize>,
    /// Clients with calls waiting, in the order their turns come.
    turns: VecDeque<Arc<str>>,
    /// Each waiting client's calls, first come first served.
    waiting: HashMap<Arc<str>, VecDeque<Waiter>>,
}

impl State {
    /// Whether `client` may take one more slot: the anonymous client always, a named one below
    /// its share of the slots.
    fn may_run(&self, client: &Arc<str>) -> bool {
        client.is_empty() || self.running.get(client).copied().unwrap_or(0) < self.client_slots
    }

    fn take(&mut self, client: &Arc<str>) {
        *self.running.entry(client.clone()).or_default() += 1;
    }

    /// Gives back a slot `client` held, to the next waiting call that may run.
    fn give_back(&mut self, client: &Arc<str>) {
        if let Some(held) = self.running.get_mut(client) {
            *held -= 1;
            if *held == 0 {
                self.running.remove(client);
            }
        }
        self.free += 1;
        self.hand_on();
    }

    /// Removes waiting call `id` of `client`; false when it is no longer waiting (granted).
    fn leave(&mut self, client: &Arc<str>, id: u64) -> bool {
        let Some(calls) = self.waiting.get_mut(client) else {
            return false;
        };
        let Some(at) = calls.iter().position(|w| w.id == id) else {
            return false;
        };
        calls.remove(at);
        self.queued -= 1;
        if calls.is_empty() {
            self.waiting.remove(client);
            self.turns.retain(|c| c != client);
        }
        true
    }

    /// Gives free slots to waiting calls, one client's turn at a time, skipping clients that
    /// hold their share.
    fn hand_on(&mut self) {
        let mut passed = 0;
        while self.free > 0 && passed < self.turns.len() {
            let Some(client) = self.turns.pop_front() else {
                return;
            };
            if !self.may_run(&client) {
                self.turns.push_back(client);
                passed += 1;
                continue;
            }
            passed = 0;
            let Some(calls) = self.waiting.get_mut(&client) else {
                continue;
            };
            let next = calls.pop_front();
            if calls.is_empty() {
                self.waiting.remove(&client);
            } else {
                self.turns.push_back(client.clone());
            }
            if let Some(waiter) = next {
                self.queued -= 1;
                // A waiter leaves the queue under this lock before its receiver goes away, so
                // the send reaches it.
                if waiter.grant.send(()).is_ok() {
                    self.free -= 1;
                    self.take(&client);
                }
            }
        }
    }
}

/// The slots of one backend.
pub struct FairSlots {
    state: Mutex<State>,
    max_queued: usize,
}

/// A slot, given back (to the next client in turn) when dropped.
pub struct Slot<'s> {
    slots: &'s FairSlots,
    client: Arc<str>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.slots.lock().give_back(&self.client);
    }
}

/// A place in the queue, left however the wait ends.
struct Place<'s> {
    slots: &'s FairSlots,
    client: Arc<str>,
    id: u64,
    granted: oneshot::Receiver<()>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        if !state.leave(&self.client, self.id) && self.granted.try_recv().is_ok() {
            // Granted a slot no one will use (the wait timed out or the caller went away
            // as it came): pass it on.
            state.give_back(&self.client);
        }
    }
}

impl FairSlots {
    /// `slots` calls at once (a named client at most a quarter of them), `max_queued` waiting.
    pub fn new(slots: usize, max_queued: usize) -> Self {
        let slots = slots.max(1);
        Self {
            state: Mutex::new(State {
                free: slots,
                client_slots: slots.div_ceil(4),
                ..State::default()
            }),
            max_queued,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while the lock is held.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most calls one named client may have waiting: half the queue, so that another
    /// client always finds room.
    pub fn client_share(&self) -> usize {
        (self.max_queued / 2).max(1)
    }

    /// Calls waiting now.
    pub fn queued(&self) -> usize {
        self.lock().queued
    }

    /// A slot for the current client's call, waiting at most `timeout` in the queue;
    /// `on_queued` is told the queue's length when the call joins it.
    pub async fn acquire(
        &self,
        timeout: Duration,
        on_queued: impl FnOnce(usize),
    ) -> Result<Slot<'_>, Refused> {
        let client = current_client();
        let place = {
            let mut state = self.lock();
            // A free slot goes to a caller that may run: the calls waiting for it, if any, are
            // all of clients that hold their share (`hand_on` would have given it otherwise).
            if state.free > 0 && state.may_run(&client) {
                state.free -= 1;
                state.take(&client);
                return Ok(Slot {
                    slots: self,
                    client,
                });
            }
            if state.queued >= self.max_queued {
                return Err(Refused::QueueFull);
            }
            let share = self.client_share();
            let waiting = state.waiting.get(&client).map_or(0, VecDeque::len);
            if !client.is_empty() && waiting >= share {
                return Err(Refused::ClientShare { share });
            }
            let (grant, granted) = oneshot::channel();
            let id = state.next_id;
            state.next_id += 1;
            state.queued += 1;
            if waiting == 0 {
                state.turns.push_back(client.clone());
            }
            let calls = state.waiting.entry(client.clone()).or_default();
            calls.push_back(Waiter { id, grant });
            on_queued(state.queued);
            Place {
                slots: self,
                client,
                id,
                granted,
            }
        };
        let mut place = place;
        match tokio::time::timeout(timeout, &mut place.granted).await {
            Ok(Ok(())) => {
                // The slot is this call's now (the `Slot`'s to give back), and the grant
                // already left the queue: the place has nothing left to undo.
                place.id = u64::MAX;
                let client = place.client.clone();
                drop(place);
                Ok(Slot {
                    slots: self,
                    client,
                })
            }
            _ => Err(Refused::TimedOut),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Holds a slot for `hold`, then records its start order in `started`.
    async fn call(
        slots: &FairSlots,
        hold: Duration,
        started: &Mutex<Vec<String>>,
        label: String,
    ) -> Result<(), Refused> {
        let slot = slots.acquire(Duration::from_secs(3600), |_| {}).await?;
        started.lock().unwrap().push(label);
        tokio::time::sleep(hold).await;
        drop(slot);
        Ok(())
    }

    /// Starts `calls` calls of `client`, each holding its slot for `hold`; counts the refused.
    async fn burst(
        slots: &FairSlots,
        client: &str,
        calls: usize,
        hold: Duration,
        started: &Mutex<Vec<String>>,
    ) -> usize {
        let refused = AtomicUsize::new(0);
        let calls = (0..calls).map(|i| {
            let refused = &refused;
            as_client(client, async move {
                let label = format!("{client}{i}");
                if call(slots, hold, started, label).await.is_err() {
                    refused.fetch_add(1, Ordering::SeqCst);
                }
            })
        });
        futures_util::future::join_all(calls).await;
        refused.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn a_clients_burst_runs_a_quarter_of_the_slots_and_waits_in_half_the_queue() {
        let slots = FairSlots::new(4, 8);
        let started = Mutex::new(Vec::new());
        let attacker = burst(&slots, "mallory", 20, Duration::from_secs(10), &started);
        let victim = as_client("system:hpa", async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            // The attacker runs 1 call (a quarter of 4 slots) and 4 wait (half the queue):
            // slots are free for the victim.
            assert_eq!(slots.queued(), 4);
            call(&slots, Duration::from_secs(1), &started, "victim".into()).await
        });
        let (refused, victim) = tokio::join!(attacker, victim);
        assert_eq!(victim, Ok(()));
        assert_eq!(refused, 15);
        let started = started.lock().unwrap();
        assert_eq!(started.len(), 6);
        assert_eq!(started[1], "victim", "{started:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn freed_slots_go_to_the_waiting_clients_in_turn() {
        // Two slots, one per client: two clients' bursts fill them and wait, and the victim's
        // call waits behind them.
        let slots = FairSlots::new(2, 10);
        let started = Mutex::new(Vec::new());
        let hold = Duration::from_secs(10);
        let victim = as_client("system:hpa", async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(slots.queued(), 8);
            call(&slots, Duration::from_secs(1), &started, "victim".into()).await
        });
        let (a, b, victim) = tokio::join!(
            burst(&slots, "a", 5, hold, &started),
            burst(&slots, "b", 5, hold, &started),
            victim
        );
        assert_eq!((a, b, victim), (0, 0, Ok(())));
        let started = started.lock().unwrap();
        // Turns go a, b, victim: first come, first served would have put the victim last.
        assert_eq!(
            started[..5],
            ["a0", "b0", "a1", "b1", "victim"],
            "{started:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn calls_past_the_queue_wait_or_time_out_and_give_their_place_back() {
        let slots = FairSlots::new(1, 1);
        let held = slots.acquire(Duration::ZERO, |_| {}).await.unwrap();
        // The anonymous client is not bound by the share, only by the queue.
        let waiting = slots.acquire(Duration::from_secs(5), |n| assert_eq!(n, 1));
        let refused = async {
            tokio::task::yield_now().await;
            slots.acquire(Duration::from_secs(5), |_| {}).await.err()
        };
        let (waited, refused) = tokio::join!(waiting, refused);
        assert_eq!(waited.err(), Some(Refused::TimedOut));
        assert_eq!(refused, Some(Refused::QueueFull));
        assert_eq!(slots.queued(), 0);
        drop(held);
        // The slot is free again: taken without waiting.
        let again = slots.acquire(Duration::ZERO, |_| panic!("queued")).await;
        assert!(again.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_dropped_as_it_is_granted_passes_the_slot_on() {
        let slots = FairSlots::new(1, 4);
        let held = slots.acquire(Duration::ZERO, |_| {}).await.unwrap();
        let mut first = Box::pin(slots.acquire(Duration::from_secs(60), |_| {}));
        let mut second = Box::pin(slots.acquire(Duration::from_secs(60), |_| {}));
        assert!((&mut first).now_or_never().is_none(), "joins the queue");
        assert!((&mut second).now_or_never().is_none(), "joins the queue");
        assert_eq!(slots.queued(), 2);
        // The slot goes to `first`, which is dropped before it runs: `second` gets it.
        drop(held);
        drop(first);
        assert!(matches!(second.now_or_never(), Some(Ok(_))));
        assert_eq!(slots.queued(), 0);
    }
}
