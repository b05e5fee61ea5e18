//! `mod8 rebuild-counters`: rebuild users' engagement counters in the cache from the event log
//! (after a Redis restart or flush, say), every user's or one user's.

use futures::{stream, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use mod8_orm::PageRequest;
use uuid::Uuid;

use crate::flows::analytics::{rebuild_counters, CountersRebuild};
use crate::{App, AppConfig};

/// Users read from the SQL store per page: what the command holds at a time.
const PAGE: u32 = 500;
/// Users rebuilt at once.
const CONCURRENCY: usize = 8;

/// What a `mod8 rebuild-counters` run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RebuildSummary {
    /// Users looked at.
    pub users: u64,
    /// Users whose counters were missing and were rebuilt from the log.
    pub rebuilt: u64,
    /// Users whose counters were in the cache already (left as they are).
    pub present: u64,
    /// Users with missing counters and no event in the log (nothing to rebuild).
    pub without_events: u64,
    /// Events of the log counted into the rebuilt counters.
    pub events: u64,
}

impl RebuildSummary {
    fn add(&mut self, outcome: CountersRebuild) {
        self.users += 1;
        match outcome {
            CountersRebuild::Rebuilt { events, .. } => {
                self.rebuilt += 1;
                self.events += events;
            }
            CountersRebuild::Present { .. } => self.present += 1,
            CountersRebuild::NoEvents => self.without_events += 1,
        }
    }

    /// The summary line the command prints.
    pub fn line(&self) -> String {
        format!(
            "rebuilt the engagement counters of {} users from {} logged events; {} already in \
             the cache, {} without events ({} users looked at)",
            self.rebuilt, self.events, self.present, self.without_events, self.users
        )
    }
}

/// `mod8 rebuild-counters [--user ID]`: builds the app from the environment, rebuilds, prints
/// the summary line.
///
/// # Errors
///
/// A backend failing.
pub async fn run(user: Option<Uuid>) -> anyhow::Result<()> {
    let app = App::build(AppConfig::from_env()?).await?;
    let result = match user {
        Some(user) => rebuild_user(&app, user).await,
        None => rebuild_all(&app, true).await,
    };
    app.shutdown().await;
    println!("{}", result?.line());
    Ok(())
}

/// Rebuilds the counters of `user` if they are missing ([`rebuild_counters`]; nothing is
/// created for a user without logged events). Idempotent: counters in the cache are left
/// alone.
///
/// # Errors
///
/// The cache's or the document store's.
pub async fn rebuild_user(app: &App, user: Uuid) -> anyhow::Result<RebuildSummary> {
    let mut summary = RebuildSummary::default();
    summary.add(rebuild_counters(&app.cache, app.docs.as_ref(), user, false).await?);
    Ok(summary)
}

/// Rebuilds the missing counters of every user of the SQL store, page by page (500
/// users held at a time, a few rebuilt at once), with a progress bar on stderr when
/// `progress` is set (hidden when stderr is not a terminal). Idempotent: counters in the
/// cache are left alone, so a second run rebuilds nothing. Users only in the event log (not
/// in the SQL store) are not looked at.
///
/// # Errors
///
/// The SQL store's, the cache's or the document store's; what was rebuilt before stays.
pub async fn rebuild_all(app: &App, progress: bool) -> anyhow::Result<RebuildSummary> {
    let mut page = PageRequest::first(PAGE);
    let mut summary = RebuildSummary::default();
    let mut bar: Option<ProgressBar> = None;
    loop {
        let users = app.sql.list_users(page).await?;
        let bar = bar.get_or_insert_with(|| {
            if progress {
                progress_bar(users.total)
            } else {
                ProgressBar::hidden()
            }
        });
        let outcomes: Vec<CountersRebuild> =
            stream::iter(users.items.iter().map(|u| u.id))
                .map(|id| async move {
                    rebuild_counters(&app.cache, app.docs.as_ref(), id, false).await
                })
                .buffered(CONCURRENCY)
                .inspect(|_| bar.inc(1))
                .try_collect()
                .await?;
        for outcome in outcomes {
            summary.add(outcome);
        }
        if !users.has_more() || users.items.is_empty() {
            break;
        }
        page = page.next();
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    Ok(summary)
}

fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("counters");
    bar
}
