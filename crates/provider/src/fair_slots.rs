//! A backend's call slots, handed out fairly: calls wait in a bounded queue, each client (the authenticated user a request came from) holds at most half of it, and a freed slot goes to the clients in turn, so one client's burst cannot starve another's calls (in the spirit of kube-apiserver's API Priority and Fairness, with the user as the flow).

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
    CLIENT
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::from(""))
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
    /// Clients with calls waiting, in the order their turns come.
    turns: VecDeque<Arc<str>>,
    /// Each waiting client's calls, first come first served.
    waiting: HashMap<Arc<str>, VecDeque<Waiter>>,
}

impl State {
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

    /// Gives a freed slot to the next client's first waiting call, or keeps it free.
    fn hand_on(&mut self) {
        while let Some(client) = self.turns.pop_front() {
            let Some(calls) = self.waiting.get_mut(&client) else {
                continue;
            };
            let next = calls.pop_front();
            if calls.is_empty() {
                self.waiting.remove(&client);
            } else {
                self.turns.push_back(client);
            }
            if let Some(waiter) = next {
                self.queued -= 1;
                // A waiter leaves the queue under this lock before its receiver goes away, so
                // the send reaches it.
                if waiter.grant.send(()).is_ok() {
                    return;
                }
            }
        }
        self.free += 1;
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
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.slots.lock().hand_on();
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
            state.hand_on();
        }
    }
}

impl FairSlots {
    /// `slots` calls at once, `max_queued` waiting.
    pub fn new(slots: usize, max_queued: usize) -> Self {
        Self {
            state: Mutex::new(State {
                free: slots.max(1),
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
            if state.free > 0 {
                state.free -= 1;
                return Ok(Slot { slots: self });
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
                drop(place);
                Ok(Slot { slots: self })
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

    #[tokio::test(start_paused = true)]
    async fn a_clients_burst_holds_half_the_queue_and_another_client_gets_the_next_slot() {
        let slots = FairSlots::new(2, 8);
        let started = Mutex::new(Vec::new());
        let refused = AtomicUsize::new(0);
        let (slots, started, refused) = (&slots, &started, &refused);
        let attacker = async {
            let calls = (0..20).map(|i| {
                as_client("attacker", async move {
                    if call(slots, Duration::from_secs(10), started, format!("a{i}"))
                        .await
                        .is_err()
                    {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                })
            });
            futures_util::future::join_all(calls).await;
        };
        let victim = as_client("system:hpa", async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            // 2 attacker calls run and 4 wait: the queue has room, and the victim's turn
            // comes before the attacker's other waiting calls.
            assert_eq!(slots.queued(), 4);
            call(slots, Duration::from_secs(1), started, "victim".into()).await
        });
        let ((), victim) = tokio::join!(attacker, victim);
        assert_eq!(victim, Ok(()));
        // 2 running + 4 waiting (half the queue); the other 14 refused at once.
        assert_eq!(refused.load(Ordering::SeqCst), 14);
        let started = started.lock().unwrap();
        assert_eq!(started.len(), 7);
        // Turns alternate: the attacker's first waiting call, then the victim's, then the
        // attacker's other three (first come, first served would have put the victim last).
        assert_eq!(started[3], "victim", "{started:?}");
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
