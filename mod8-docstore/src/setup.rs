//! Setup options and the report of what setup did; expiring log entries.

use std::time::Duration;

use bson::oid::ObjectId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The collections the store uses.
pub(crate) const EVENTS: &str = "events";
pub(crate) const PROFILES: &str = "user_profiles";
pub(crate) const LOGS: &str = "logs";
pub(crate) const ANALYTICS: &str = "analytics";
/// The collection of [`crate::DocStore::claim_marker`]'s markers (created by the first claim).
pub(crate) const MARKERS: &str = "markers";

/// Index names, shared by every backend so reports read alike.
pub(crate) const IDX_USERNAME: &str = "username_unique";
pub(crate) const IDX_EMAIL: &str = "email_unique";
pub(crate) const IDX_USER_ID: &str = "user_id_unique";
pub(crate) const IDX_INTERESTS: &str = "interests";
pub(crate) const IDX_USER_TIME: &str = "user_id_timestamp";
pub(crate) const IDX_TIME: &str = "timestamp";
pub(crate) const IDX_GEO: &str = "geo_location_2dsphere";
pub(crate) const IDX_LOG_TTL: &str = "created_at_ttl";
pub(crate) const IDX_ANALYTICS: &str = "name_computed_at";

/// What [`crate::DocStore::setup`] should do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupOptions {
    /// How long log entries live (the TTL index on `logs.created_at`). Default 7 days.
    ///
    /// Whole seconds, from 1 second to `i32::MAX` seconds (about 68 years, the largest TTL
    /// MongoDB accepts); setup refuses anything else with [`crate::Error::Validation`] naming
    /// `log_retention`, on every backend.
    pub log_retention: Duration,
    /// What to do with a step the server does not support. Default
    /// [`OnUnsupported::Report`].
    pub on_unsupported: OnUnsupported,
}

/// What setup does with a step the server does not support (a `$jsonSchema` validator, a
/// TTL or `2dsphere` index on a server without them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OnUnsupported {
    /// Report it as [`SetupOutcome::Unsupported`] and go on with the other steps.
    #[default]
    Report,
    /// Fail with [`crate::Error::Unsupported`] on the first such step.
    Fail,
}

impl Default for SetupOptions {
    fn default() -> Self {
        SetupOptions {
            log_retention: Duration::from_secs(7 * 24 * 3600),
            on_unsupported: OnUnsupported::Report,
        }
    }
}

impl SetupOptions {
    /// These options with `retention` for logs.
    pub fn with_log_retention(mut self, retention: Duration) -> Self {
        self.log_retention = retention;
        self
    }

    /// These options doing `on_unsupported` with steps the server does not support
    /// ([`OnUnsupported::Fail`]: fail on the first one).
    pub fn with_on_unsupported(mut self, on_unsupported: OnUnsupported) -> Self {
        self.on_unsupported = on_unsupported;
        self
    }
}

/// What setup did to one collection, validator or index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetupOutcome {
    /// It did not exist and was created.
    Created,
    /// It existed and differed from the code (validator, TTL retention); it was updated.
    Updated,
    /// It already matched the code.
    Unchanged,
    /// The server does not support it; `message` is the server's.
    Unsupported {
        /// The server's message.
        message: String,
    },
}

/// One step of setup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupStep {
    /// What the step is about, for example `user_profiles index username_unique`.
    pub target: String,
    /// What happened.
    pub outcome: SetupOutcome,
}

/// Everything setup did, step by step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupReport {
    /// The steps, in the order they ran.
    pub steps: Vec<SetupStep>,
}

impl SetupReport {
    /// Whether any step created or updated something.
    pub fn changed(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.outcome, SetupOutcome::Created | SetupOutcome::Updated))
    }

    /// The outcome of the step whose target is `target`.
    pub fn outcome(&self, target: &str) -> Option<&SetupOutcome> {
        self.steps
            .iter()
            .find(|s| s.target == target)
            .map(|s| &s.outcome)
    }

    /// The steps the server did not support.
    pub fn unsupported(&self) -> impl Iterator<Item = &SetupStep> {
        self.steps
            .iter()
            .filter(|s| matches!(s.outcome, SetupOutcome::Unsupported { .. }))
    }

    pub(crate) fn push(&mut self, target: impl Into<String>, outcome: SetupOutcome) {
        self.steps.push(SetupStep {
            target: target.into(),
            outcome,
        });
    }
}

/// The target name of a collection's setup step, identical for every backend.
pub(crate) fn collection_target(name: &str) -> String {
    format!("{name} collection")
}

/// The target name of a validator's setup step.
pub(crate) fn validator_target(name: &str) -> String {
    format!("{name} validator")
}

/// The target name of an index's setup step.
pub(crate) fn index_target(collection: &str, index: &str) -> String {
    format!("{collection} index {index}")
}

/// One entry of the expiring log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The store's id, set when appended.
    #[serde(rename = "_id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Severity (`info`, `warn`, ...).
    pub level: String,
    /// The message.
    pub message: String,
    /// When it was written; the entry expires `log_retention` later.
    #[serde(with = "crate::model::timestamp", default = "crate::model::now")]
    pub created_at: DateTime<Utc>,
}

/// The oldest `created_at` still inside `retention` at `now`. Checked: setup keeps the
/// retention within `i32::MAX` seconds, so the subtraction cannot leave chrono's range, but if
/// it ever did every entry would count as recent rather than the call panicking.
pub(crate) fn log_cutoff(now: DateTime<Utc>, retention: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(retention)
        .ok()
        .and_then(|r| now.checked_sub_signed(r))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl LogEntry {
    /// An entry at `level` with `message`, written now.
    pub fn new(level: impl Into<String>, message: impl Into<String>) -> Self {
        LogEntry {
            id: None,
            level: level.into(),
            message: message.into(),
            created_at: crate::model::now(),
        }
    }
}
