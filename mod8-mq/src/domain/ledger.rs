//! The sent ledger: which notifications were sent, by message id, so a redelivered
//! notification is not sent twice.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::Result;

/// A record of the notifications sent, keyed by the message (envelope) id, that
/// [`NotificationConsumer`](super::NotificationConsumer) consults before it hands a
/// notification to its [`Notifier`](super::Notifier).
///
/// A message is delivered at least once: a nack and requeue, a connection lost between the
/// handling and the acknowledgement, a retry, a process restart all bring the same id again.
/// The consumer [`SentLedger::claim`]s the id first and sends only when the claim is new; if
/// the send fails it [`SentLedger::release`]s the id, so the retry of that message sends it.
///
/// **At most once.** A crash (or a panic in the notifier) between the claim and the send
/// leaves the id claimed and the notification unsent: its redelivery is skipped, so that
/// notification is lost rather than sent twice. This is deliberate and the same choice as
/// the welcome notification's marker in the application: a second email or SMS cannot be
/// taken back, the window between the claim and the send is one call wide, and the
/// alternative (at least once: send, then record) sends twice whenever the process stops in
/// the same window after the send — no ledger can close that window without the provider's
/// help. A claim that is not released (a crash, a failed release) is the trace of a
/// notification that may not have gone out.
///
/// The ledger's durability is the de-duplication's: one kept in memory
/// ([`MemorySentLedger`]) forgets on restart and a redelivery after it is sent again; one in
/// a database shared by every instance (the application keeps it in the document store)
/// holds across restarts and instances.
#[async_trait]
pub trait SentLedger: Send + Sync + 'static {
    /// Claims `message_id` atomically: `true` when this call claimed it (send the
    /// notification), `false` when it was claimed before (sent, being sent by another
    /// delivery, or lost in a crash after its claim: do not send). A transient error makes the
    /// message retry without sending.
    async fn claim(&self, message_id: Uuid) -> Result<bool>;

    /// Gives up the claim of `message_id` after its send failed, so the next delivery of the
    /// message sends it. Releasing an id that is not claimed is not an error.
    async fn release(&self, message_id: Uuid) -> Result<()>;
}

#[async_trait]
impl<L: SentLedger + ?Sized> SentLedger for Arc<L> {
    async fn claim(&self, message_id: Uuid) -> Result<bool> {
        (**self).claim(message_id).await
    }

    async fn release(&self, message_id: Uuid) -> Result<()> {
        (**self).release(message_id).await
    }
}

/// A [`SentLedger`] in this process's memory: the default of
/// [`NotificationConsumer::new`](super::NotificationConsumer::new). Clones share it.
///
/// As durable as the process: a restart forgets every id, and a notification redelivered
/// after it is sent again. It also keeps only the last [`MemorySentLedger::capacity`] ids
/// (default [`MemorySentLedger::DEFAULT_CAPACITY`]), so it stays bounded in a long-running
/// process; a redelivery of an older id is sent again. For de-duplication across restarts
/// and instances, give the consumer a ledger in a shared database
/// ([`NotificationConsumer::with_ledger`](super::NotificationConsumer::with_ledger)).
#[derive(Debug, Clone)]
pub struct MemorySentLedger {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    capacity: usize,
    claimed: HashSet<Uuid>,
    /// Claim order, oldest first, for evicting past the capacity.
    order: VecDeque<Uuid>,
}

impl Default for MemorySentLedger {
    fn default() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }
}

impl MemorySentLedger {
    /// Ids remembered by [`MemorySentLedger::default`]: 100,000 (a few megabytes).
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A ledger remembering the last `capacity` claimed ids (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        MemorySentLedger {
            state: Arc::new(Mutex::new(State {
                capacity: capacity.max(1),
                claimed: HashSet::new(),
                order: VecDeque::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the set and the queue consistent: a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many ids it remembers at most.
    pub fn capacity(&self) -> usize {
        self.lock().capacity
    }

    /// Whether `message_id` is claimed now.
    pub fn contains(&self, message_id: Uuid) -> bool {
        self.lock().claimed.contains(&message_id)
    }

    /// How many ids are claimed now.
    pub fn len(&self) -> usize {
        self.lock().claimed.len()
    }

    /// Whether no id is claimed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl SentLedger for MemorySentLedger {
    async fn claim(&self, message_id: Uuid) -> Result<bool> {
        let mut state = self.lock();
        if !state.claimed.insert(message_id) {
            return Ok(false);
        }
        state.order.push_back(message_id);
        while state.order.len() > state.capacity {
            if let Some(old) = state.order.pop_front() {
                state.claimed.remove(&old);
            }
        }
        Ok(true)
    }

    async fn release(&self, message_id: Uuid) -> Result<()> {
        let mut state = self.lock();
        if state.claimed.remove(&message_id) {
            state.order.retain(|id| *id != message_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn claims_once_until_released() {
        let ledger = MemorySentLedger::default();
        let id = Uuid::new_v4();
        assert!(ledger.claim(id).await.unwrap());
        assert!(!ledger.claim(id).await.unwrap());
        assert!(ledger.contains(id));
        ledger.release(id).await.unwrap();
        assert!(!ledger.contains(id));
        assert!(ledger.claim(id).await.unwrap());
        // Releasing twice, or an unknown id, is fine.
        ledger.release(id).await.unwrap();
        ledger.release(id).await.unwrap();
        assert!(ledger.is_empty());
    }

    #[tokio::test]
    async fn keeps_the_last_capacity_ids() {
        let ledger = MemorySentLedger::with_capacity(2);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            assert!(ledger.claim(*id).await.unwrap());
        }
        assert_eq!(ledger.len(), 2);
        assert!(!ledger.contains(ids[0]), "the oldest is forgotten");
        assert!(!ledger.claim(ids[2]).await.unwrap());
        assert!(ledger.claim(ids[0]).await.unwrap());
        assert_eq!(ledger.len(), 2);
    }
}
