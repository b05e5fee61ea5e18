//! The insights worker: keeps the segment report over every user and the recommendation
//! model current, in the background of [`App::start`].
//!
//! - Every [`crate::AppConfig::insights_refresh`] (and once at start) it recomputes the
//!   segment report over every user ([`App::refresh_insights`], a streamed batch) and rebuilds
//!   the co-occurrence model from every order line ([`App::refresh_model`]).
//! - After orders ([`App::place_order`] wakes it) it rebuilds only the model: one aggregate in
//!   the database. Orders arriving while it works coalesce into one more rebuild.
//!
//! - Every full pass also purges the notification markers older than
//!   [`crate::sinks::NOTIFICATION_MARKER_RETENTION`] (the markers that keep each notification
//!   sent once), so they stay bounded.
//!
//! A failed pass is logged and the previous report and model are kept; the next pass tries
//! again. Orders placed by other processes are picked up by the periodic pass.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::App;

/// The worker's handle on the app: what wakes it after an order.
#[derive(Debug, Default)]
pub struct InsightsWorker {
    wake: Notify,
}

impl InsightsWorker {
    /// A handle that nothing is waiting on yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the running worker to rebuild the recommendation model (after an order). Wakes
    /// coalesce: many orders during one rebuild cause one more.
    pub fn orders_changed(&self) {
        self.wake.notify_one();
    }
}

/// What one wake-up of the worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Report and model.
    Full,
    /// The model only (orders changed).
    Model,
}

/// Runs the worker until `shutdown` turns true or the app is dropped. Holds the app weakly,
/// so the task never keeps it alive.
pub(crate) async fn run_worker(
    app: Weak<App>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pass = Pass::Full;
    loop {
        let Some(strong) = app.upgrade() else {
            break;
        };
        one_pass(&strong, pass).await;
        let worker = Arc::clone(&strong.worker);
        drop(strong);
        if *shutdown.borrow() {
            break;
        }
        pass = tokio::select! {
            () = tokio::time::sleep(every) => Pass::Full,
            () = worker.wake.notified() => Pass::Model,
            _ = shutdown.changed() => break,
        };
    }
}

async fn one_pass(app: &App, pass: Pass) {
    if pass == Pass::Full {
        match app
            .purge_notification_markers(crate::sinks::NOTIFICATION_MARKER_RETENTION)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(
                purged = n,
                "notification markers past their retention purged"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "notification markers not purged; next pass retries")
            }
        }
        if let Err(e) = app.refresh_insights().await {
            tracing::warn!(error = %e, "insights report not refreshed; keeping the previous one");
        }
    }
    if let Err(e) = app.refresh_model().await {
        tracing::warn!(error = %e, "recommendation model not rebuilt; keeping the previous one");
    }
}
