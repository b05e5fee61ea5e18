//! Single-flight loading: at most one load per key at a time in one [`Cache`](crate::Cache),
//! its result shared with every caller that missed meanwhile, and a way to tell a load that
//! its key changed while it ran.
//!
//! The map holds only channel ends and flags, never values: the typed result travels through
//! the channel as an [`Shared`] and the cache downcasts it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

/// What a loader produced, shared with every caller that waited on it.
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

type Map = HashMap<String, Flight>;

/// The loads running in one cache, by key.
#[derive(Default)]
pub(crate) struct Flights {
    map: Arc<Mutex<Map>>,
}

/// A load in progress for one key.
struct Flight {
    /// Where its result will be published.
    rx: watch::Receiver<Option<Shared>>,
    /// Set when the key is written or invalidated through this cache while the load runs:
    /// the loaded value may predate that change, so the leader must not store it.
    superseded: Arc<AtomicBool>,
}

/// Whether a caller runs the load for its key or waits for the one running.
pub(crate) enum Role {
    /// No load was running: this caller runs it and publishes the result.
    Lead(Leader),
    /// A load is running: this caller waits for its result.
    Wait(Waiter),
}

/// The caller running the load of one key. Dropping it (finished, failed or cancelled)
/// removes the flight, so the next miss starts a new one.
pub(crate) struct Leader {
    tx: watch::Sender<Option<Shared>>,
    map: Arc<Mutex<Map>>,
    key: String,
    rx: watch::Receiver<Option<Shared>>,
    superseded: Arc<AtomicBool>,
}

/// A caller waiting for another caller's load.
pub(crate) struct Waiter {
    rx: watch::Receiver<Option<Shared>>,
}

fn lock(map: &Mutex<Map>) -> MutexGuard<'_, Map> {
    // The map only holds channel ends; a panic elsewhere cannot corrupt it.
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Flights {
    /// Joins the load running for `key`, or starts one with this caller as its leader (also
    /// when the running one is superseded).
    pub(crate) fn join_or_lead(&self, key: &str) -> Role {
        let mut map = lock(&self.map);
        if let Some(flight) = map.get(key) {
            // A superseded flight's result may predate a change made through this cache:
            // a caller arriving after that change starts a new flight instead (the old one's
            // waiters still get its result; its leader's drop leaves the new flight alone).
            if !flight.superseded.load(SeqCst) {
                return Role::Wait(Waiter {
                    rx: flight.rx.clone(),
                });
            }
        }
        let (tx, rx) = watch::channel(None);
        let superseded = Arc::new(AtomicBool::new(false));
        map.insert(
            key.to_owned(),
            Flight {
                rx: rx.clone(),
                superseded: superseded.clone(),
            },
        );
        drop(map);
        Role::Lead(Leader {
            tx,
            map: self.map.clone(),
            key: key.to_owned(),
            rx,
            superseded,
        })
    }

    /// Marks the loads running for the keys `matches` selects as superseded. Called before
    /// the change reaches the store, so that a leader checking after its own store sees it.
    pub(crate) fn supersede(&self, matches: impl Fn(&str) -> bool) {
        let map = lock(&self.map);
        for (key, flight) in map.iter() {
            if matches(key) {
                flight.superseded.store(true, SeqCst);
            }
        }
    }
}

impl Leader {
    /// Whether the key changed since this flight started.
    pub(crate) fn superseded(&self) -> bool {
        self.superseded.load(SeqCst)
    }

    /// Hands `result` to every waiter and ends the flight.
    pub(crate) fn publish(self, result: Shared) {
        let _ = self.tx.send(Some(result));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut map = lock(&self.map);
        if map
            .get(&self.key)
            .is_some_and(|f| f.rx.same_channel(&self.rx))
        {
            map.remove(&self.key);
        }
    }
}

impl Waiter {
    /// The leader's result, or `None` when the leader went away without one (cancelled):
    /// the caller then tries again, and may become the leader.
    pub(crate) async fn result(mut self) -> Option<Shared> {
        match self.rx.wait_for(Option::is_some).await {
            Ok(shared) => shared.clone(),
            Err(_) => None,
        }
    }
}
