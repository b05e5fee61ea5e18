//! The stores' fast path for calls on the pool: one pooled connection kept checked out
//! between calls.
//!
//! A call through sqlx's pool pays for more than its statement: the pool pings every
//! connection it takes back, one more round trip per call — to the server on PostgreSQL, to
//! the connection's worker thread on SQLite (where every command is a hand-over between
//! threads, and with the single connection of an in-memory database the next call waits for
//! the ping). Keeping one connection out of the pool leaves a point lookup with the one round
//! trip its statement needs.
//!
//! The rules that keep this invisible:
//! - An *exclusive* pin holds the pool's only connection (in memory, or a file pool of one):
//!   every call on the pool queues for it, as it queued for the pool before, within the same
//!   acquire timeout. A unit of work or a migration hands it back to the pool first
//!   ([`Pinned::unpin`]), and the next call on the pool pins it again.
//! - A shared pin (a file pool of several connections) is taken when free; a call that finds it
//!   busy takes another connection from the pool, so concurrent readers still run in parallel.
//! - Once a host reaches the pool itself (`SqlStore::pool`) or the store closes, the pin is
//!   released for good and every call goes through the pool as before.
//! - A connection that failed in a way that may have broken it (its worker thread gone, an I/O
//!   error) is handed back to the pool, which tests it and discards it if it is dead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::{Pool, TransactionManager};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

/// The pinned connection of a pool and whether it is still in use.
pub(crate) struct Pinned<DB: sqlx::Database> {
    slot: Arc<Mutex<Option<PoolConnection<DB>>>>,
    /// Cleared for good by [`Pinned::retire`].
    active: AtomicBool,
    /// Set by [`Pinned::note`]: hand the connection back before its next use.
    suspect: AtomicBool,
    /// The pin holds the pool's only connection: calls wait for it instead of the pool.
    exclusive: bool,
}

/// The pinned connection, checked out for one call.
pub(crate) struct PinnedConn<DB: sqlx::Database> {
    conn: OwnedMappedMutexGuard<Option<PoolConnection<DB>>, PoolConnection<DB>>,
    /// Dropped after `conn` (fields drop in order), so the slot is unlocked by then.
    after: AfterUse<DB>,
}

impl<DB: sqlx::Database> PinnedConn<DB> {
    /// The connection.
    pub(crate) fn connection(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }

    /// The pin this connection belongs to.
    pub(crate) fn pin(&self) -> Arc<Pinned<DB>> {
        self.after.0.clone()
    }
}

/// An exclusive pin held empty by [`Pinned::unpin`]: no call pins the connection until it is
/// dropped.
pub(crate) struct UnpinGuard<'a, DB: sqlx::Database> {
    _slot: tokio::sync::MutexGuard<'a, Option<PoolConnection<DB>>>,
}

/// Hands the connection back to the pool after the call if the pin was retired meanwhile.
struct AfterUse<DB: sqlx::Database>(Arc<Pinned<DB>>);

impl<DB: sqlx::Database> Drop for AfterUse<DB> {
    fn drop(&mut self) {
        if !self.0.active.load(Ordering::Acquire) || self.0.suspect.load(Ordering::Acquire) {
            self.0.try_unpin();
        }
    }
}

impl<DB: sqlx::Database> Pinned<DB> {
    /// An empty pin; `exclusive` when the pool it pins from has exactly one connection.
    pub(crate) fn new(exclusive: bool) -> Arc<Self> {
        Arc::new(Pinned {
            slot: Arc::new(Mutex::new(None)),
            active: AtomicBool::new(true),
            suspect: AtomicBool::new(false),
            exclusive,
        })
    }

    /// The pinned connection for one call, pinning one from `pool` if none is; `None` when
    /// the call should use the pool (the pin is retired, or busy and not exclusive).
    pub(crate) async fn checkout(
        self: &Arc<Self>,
        pool: &Pool<DB>,
    ) -> Result<Option<PinnedConn<DB>>, sqlx::Error> {
        if !self.active.load(Ordering::Acquire) {
            return Ok(None);
        }
        // The pool's acquire timeout bounds the whole wait, as it bounded `acquire`.
        let deadline = Instant::now() + pool.options().get_acquire_timeout();
        let mut slot = if self.exclusive {
            tokio::time::timeout_at(deadline.into(), self.slot.clone().lock_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
        } else {
            match self.slot.clone().try_lock_owned() {
                Ok(slot) => slot,
                Err(_) => return Ok(None),
            }
        };
        if !self.active.load(Ordering::Acquire) {
            release(slot.take());
            return Ok(None);
        }
        if self.suspect.swap(false, Ordering::AcqRel) {
            release(slot.take());
        }
        if slot.is_none() {
            let conn = tokio::time::timeout_at(deadline.into(), pool.acquire())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
            *slot = Some(conn);
        }
        if let Some(conn) = slot.as_mut() {
            if let Err(e) = settle::<DB>(conn).await {
                release(slot.take());
                return Err(e);
            }
        }
        match OwnedMutexGuard::try_map(slot, Option::as_mut) {
            Ok(conn) => Ok(Some(PinnedConn {
                conn,
                after: AfterUse(self.clone()),
            })),
            // Unreachable (the slot was just filled); the pool serves the call then.
            Err(_) => Ok(None),
        }
    }

    /// Hands an exclusive pin's connection back to the pool (before a unit of work or a
    /// migration takes it from there), waiting for a call that uses it. A shared pin stays:
    /// the pool has other connections.
    ///
    /// The returned guard keeps the pin locked: hold it until the connection has been taken
    /// from the pool. Otherwise a concurrent call on the pool could pin the connection again
    /// in between (it finds the slot empty and acquires from the pool first), and the unit of
    /// work would wait for a connection that never comes back to the pool.
    pub(crate) async fn unpin(
        &self,
        pool: &Pool<DB>,
    ) -> Result<Option<UnpinGuard<'_, DB>>, sqlx::Error> {
        if !self.exclusive {
            return Ok(None);
        }
        let timeout = pool.options().get_acquire_timeout();
        let mut slot = tokio::time::timeout(timeout, self.slot.lock())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        if let Some(conn) = slot.as_mut() {
            // An error leaves the connection to the pool's own check on its return.
            settle::<DB>(conn).await.ok();
        }
        release(slot.take());
        Ok(Some(UnpinGuard { _slot: slot }))
    }

    /// Notes a driver error from a call: one that may have broken the connection has it
    /// handed back to the pool (which tests it) after the call.
    pub(crate) fn note(&self, err: &sqlx::Error) {
        if matches!(
            err,
            sqlx::Error::WorkerCrashed | sqlx::Error::Io(_) | sqlx::Error::Protocol(_)
        ) {
            self.suspect.store(true, Ordering::Release);
        }
    }

    /// Has the connection handed back to the pool after the current call, unless
    /// [`Pinned::clear_suspect`] comes first (a transaction begun on it, until it commits).
    pub(crate) fn mark_suspect(&self) {
        self.suspect.store(true, Ordering::Release);
    }

    /// Undoes [`Pinned::mark_suspect`] for a transaction that committed.
    pub(crate) fn clear_suspect(&self) {
        self.suspect.store(false, Ordering::Release);
    }

    /// Stops pinning for good and hands the connection back to the pool now if no call uses
    /// it (otherwise when that call ends).
    pub(crate) fn retire(&self) {
        self.active.store(false, Ordering::Release);
        self.try_unpin();
    }

    /// [`Pinned::retire`], waiting for a call that uses the connection.
    pub(crate) async fn retire_and_wait(&self) {
        self.active.store(false, Ordering::Release);
        release(self.slot.lock().await.take());
    }

    /// Hands the connection back to the pool if no call uses it.
    fn try_unpin(&self) {
        if let Ok(mut slot) = self.slot.try_lock() {
            release(slot.take());
        }
    }
}

impl<DB: sqlx::Database> Drop for Pinned<DB> {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.slot.try_lock() {
            release(slot.take());
        }
    }
}

/// Rolls back a transaction that a cancelled call left open on `conn`. sqlx starts a
/// transaction with a statement of its own (SQLite's `BEGIN IMMEDIATE`) in two round trips to
/// the worker, and a call dropped between them leaves the transaction open with no
/// `Transaction` to roll it back; on the connection the store keeps, that would hold the write
/// lock and fail the next `BEGIN`. (A transaction dropped later queues its own rollback, which
/// runs first; this then finds nothing to do.)
async fn settle<DB: sqlx::Database>(conn: &mut DB::Connection) -> Result<(), sqlx::Error> {
    let depth = DB::TransactionManager::get_transaction_depth(conn);
    for _ in 0..depth {
        if DB::TransactionManager::get_transaction_depth(conn) == 0 {
            break;
        }
        DB::TransactionManager::rollback(conn).await?;
    }
    Ok(())
}

/// Returns a connection to its pool. sqlx does that from a task it spawns on the current
/// Tokio runtime; without one (a store dropped outside the runtime) the connection is dropped
/// inside a runtime of its own, whose end closes it (the pool opens another when needed).
fn release<DB: sqlx::Database>(conn: Option<PoolConnection<DB>>) {
    let Some(conn) = conn else { return };
    if tokio::runtime::Handle::try_current().is_ok() {
        drop(conn);
        return;
    }
    match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => {
            let _inside = runtime.enter();
            drop(conn);
        }
        // Not even a runtime of its own: the connection stays open until the process ends.
        Err(_) => std::mem::forget(conn),
    }
}
