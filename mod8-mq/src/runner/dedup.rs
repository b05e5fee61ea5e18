//! De-duplication by message id, for idempotent handlers: ids of processed messages are
//! remembered (the last `capacity` of them), and a copy that arrives while another copy of
//! the same id is being handled waits for that one instead of being handled beside it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use uuid::Uuid;

/// Processed and in-flight message ids of one consumer.
pub(super) struct Dedup {
    state: Mutex<State>,
}

struct State {
    capacity: usize,
    seen: HashSet<Uuid>,
    order: VecDeque<Uuid>,
    /// Ids being handled now, each with the signal its waiting copies listen to.
    in_flight: HashMap<Uuid, Arc<Notify>>,
}

/// What to do with a message.
pub(super) enum Claim<'a> {
    /// Its id was processed already: acknowledge it without handling.
    Duplicate,
    /// Handle it; the id stays claimed until the guard is settled or dropped.
    Handle(InFlight<'a>),
}

/// A claimed id. [`InFlight::processed`] remembers it as processed; dropping it otherwise
/// (retry, reject, a failure) releases it, so a waiting copy is handled after all.
pub(super) struct InFlight<'a> {
    dedup: &'a Dedup,
    id: Uuid,
    processed: bool,
}

impl Dedup {
    pub(super) fn new(capacity: usize) -> Self {
        Dedup {
            state: Mutex::new(State {
                capacity: capacity.max(1),
                seen: HashSet::new(),
                order: VecDeque::new(),
                in_flight: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below leaves the sets consistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `id` for handling: [`Claim::Duplicate`] when it was processed; when another
    /// copy is being handled, waits until that one is done and decides then.
    pub(super) async fn claim(&self, id: Uuid) -> Claim<'_> {
        loop {
            let busy = {
                let mut state = self.lock();
                if state.seen.contains(&id) {
                    return Claim::Duplicate;
                }
                match state.in_flight.get(&id) {
                    Some(signal) => signal.clone(),
                    None => {
                        state.in_flight.insert(id, Arc::new(Notify::new()));
                        return Claim::Handle(InFlight {
                            dedup: self,
                            id,
                            processed: false,
                        });
                    }
                }
            };
            let done = busy.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            // Re-check after listening, so a copy finished in between is not waited for.
            let still_busy = self
                .lock()
                .in_flight
                .get(&id)
                .is_some_and(|signal| Arc::ptr_eq(signal, &busy));
            if still_busy {
                done.await;
            }
        }
    }
}

impl InFlight<'_> {
    /// The message was handled and acknowledged: later copies are duplicates.
    pub(super) fn processed(mut self) {
        self.processed = true;
        // Drop releases the claim (and wakes waiting copies, which now find it seen).
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut state = self.dedup.lock();
        if self.processed && state.seen.insert(self.id) {
            state.order.push_back(self.id);
            if state.order.len() > state.capacity {
                if let Some(old) = state.order.pop_front() {
                    state.seen.remove(&old);
                }
            }
        }
        if let Some(signal) = state.in_flight.remove(&self.id) {
            signal.notify_waiters();
        }
    }
}
