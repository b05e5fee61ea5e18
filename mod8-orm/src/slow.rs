//! Statement timings and the slow-statement log.
//!
//! Every statement the repositories issue is timed (from the moment it is sent until its last
//! row is read) under a *statement name*: a stable fingerprint of its SQL
//! (`select_orders_5c1e09a2`: the verb, the first table, and a hash of the text with its
//! placeholders and repeated value lists folded, so a bulk insert of 10 or 1,000 rows is one
//! statement). A statement slower than [`SlowStatementSettings::threshold`] (default 100 ms)
//! is counted, and the first slow run of each statement in every
//! [`SlowStatementSettings::interval`] (default one minute) is logged as a `WARN` event of
//! target `mod8_orm::slow` with its SQL and its execution plan (PostgreSQL: the generic plan
//! as `EXPLAIN (FORMAT JSON)`; SQLite: `EXPLAIN QUERY PLAN`), taken on a connection of its own
//! after the statement finished, so the caller does not wait for it.
//!
//! What is kept is bounded: at most [`MAX_STATEMENTS`] names (statements beyond that are
//! timed together as `other`), each with its counters, one sample of its SQL and its last
//! logged plan. Read it with [`crate::Database::statement_log`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// Most statement names one log keeps; later ones are timed together as [`OTHER`].
pub const MAX_STATEMENTS: usize = 256;
/// The name statements beyond [`MAX_STATEMENTS`] are timed under.
pub const OTHER: &str = "other";
/// Most distinct SQL texts remembered for a fast name lookup (texts beyond it are
/// fingerprinted on every run; they still land on a bounded set of names).
const MAX_TEXTS: usize = 1024;

/// When a statement counts as slow and how often one is logged.
///
/// ```
/// use std::time::Duration;
/// let settings = mod8_orm::SlowStatementSettings::default()
///     .with_threshold(Duration::from_millis(250));
/// assert_eq!(settings.interval, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlowStatementSettings {
    /// A statement taking at least this long is slow (default 100 ms;
    /// `MOD8_SQL_SLOW_THRESHOLD_MS` in [`crate::OrmConfig::from_env`]).
    pub threshold: Duration,
    /// Each statement is logged with its plan at most once per this interval (default 60 s);
    /// every slow run is counted.
    pub interval: Duration,
}

impl Default for SlowStatementSettings {
    fn default() -> Self {
        SlowStatementSettings {
            threshold: Duration::from_millis(100),
            interval: Duration::from_secs(60),
        }
    }
}

impl SlowStatementSettings {
    /// Sets the threshold.
    pub fn with_threshold(mut self, threshold: Duration) -> Self {
        self.threshold = threshold;
        self
    }

    /// Sets the logging interval.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

/// The timings of one statement name, as [`StatementLog::timings`] reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementTiming {
    /// The statement's name (see the module documentation).
    pub name: String,
    /// The SQL of its first run (a sample: statements with folded value lists differ only in
    /// the number of them).
    pub sql: String,
    /// Runs timed.
    pub calls: u64,
    /// Their total time.
    pub total: Duration,
    /// The longest one.
    pub max: Duration,
    /// Runs at or above the threshold.
    pub slow: u64,
    /// Times it was logged with its plan (at most once per interval).
    pub logged: u64,
    /// The plan logged last, if one was taken (a statement whose plan could not be taken is
    /// logged with the reason instead).
    pub plan: Option<String>,
}

/// Takes the plan of a statement on a connection of its own.
pub(crate) type Explainer =
    Arc<dyn Fn(String) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

struct Entry {
    timing: StatementTiming,
    logged_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    by_text: HashMap<Box<str>, usize>,
    by_name: HashMap<String, usize>,
    entries: Vec<Entry>,
}

impl State {
    /// The entry of `sql`, created on its first run.
    fn entry(&mut self, sql: &str) -> &mut Entry {
        if let Some(&i) = self.by_text.get(sql) {
            return &mut self.entries[i];
        }
        let mut name = statement_name(sql);
        let index = match self.by_name.get(&name) {
            Some(&i) => i,
            None => {
                if self.entries.len() >= MAX_STATEMENTS {
                    name = OTHER.to_owned();
                }
                match self.by_name.get(&name) {
                    Some(&i) => i,
                    None => {
                        self.entries.push(Entry {
                            timing: StatementTiming {
                                name: name.clone(),
                                sql: sql.to_owned(),
                                calls: 0,
                                total: Duration::ZERO,
                                max: Duration::ZERO,
                                slow: 0,
                                logged: 0,
                                plan: None,
                            },
                            logged_at: None,
                        });
                        self.by_name.insert(name, self.entries.len() - 1);
                        self.entries.len() - 1
                    }
                }
            }
        };
        if self.by_text.len() < MAX_TEXTS {
            self.by_text.insert(sql.into(), index);
        }
        &mut self.entries[index]
    }
}

/// The timings of every statement a store issued, and its slow-statement log (see the module
/// documentation). Shared by a store, its clones and its units of work.
pub struct StatementLog {
    settings: SlowStatementSettings,
    enabled: bool,
    state: Mutex<State>,
    explainer: Mutex<Option<Explainer>>,
}

impl std::fmt::Debug for StatementLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementLog")
            .field("settings", &self.settings)
            .field("statements", &self.state().entries.len())
            .finish()
    }
}

impl StatementLog {
    /// A log with `settings` (plans are taken once a store arms it).
    pub(crate) fn new(settings: SlowStatementSettings) -> Self {
        StatementLog {
            settings,
            enabled: true,
            state: Mutex::new(State::default()),
            explainer: Mutex::new(None),
        }
    }

    /// A log that records nothing (for the store that takes plans, whose own statements are
    /// not timed).
    pub(crate) fn disabled() -> Self {
        StatementLog {
            enabled: false,
            ..StatementLog::new(SlowStatementSettings::default())
        }
    }

    /// Its settings.
    pub fn settings(&self) -> SlowStatementSettings {
        self.settings
    }

    /// Every statement's timings, the most total time first.
    pub fn timings(&self) -> Vec<StatementTiming> {
        let mut all: Vec<StatementTiming> = self
            .state()
            .entries
            .iter()
            .map(|e| e.timing.clone())
            .collect();
        all.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.name.cmp(&b.name)));
        all
    }

    /// Slow runs per statement name, for statements that had any (for a
    /// `mod8_sql_slow_statements_total{statement=...}` counter).
    pub fn slow_counts(&self) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> = self
            .state()
            .entries
            .iter()
            .filter(|e| e.timing.slow > 0)
            .map(|e| (e.timing.name.clone(), e.timing.slow))
            .collect();
        counts.sort();
        counts
    }

    /// The state; every update under the lock is a few field writes, so a poisoned lock is
    /// still consistent.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets how plans are taken.
    pub(crate) fn arm(&self, explainer: Explainer) {
        *self
            .explainer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(explainer);
    }

    /// Records one run of `sql`; a slow run due for logging is logged with its plan.
    pub(crate) fn observe(self: &Arc<Self>, sql: &str, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let slow = elapsed >= self.settings.threshold;
        let due = {
            let mut state = self.state();
            let entry = state.entry(sql);
            let t = &mut entry.timing;
            t.calls += 1;
            t.total = t.total.saturating_add(elapsed);
            t.max = t.max.max(elapsed);
            if !slow {
                return;
            }
            t.slow += 1;
            let now = Instant::now();
            if entry
                .logged_at
                .is_some_and(|at| now.duration_since(at) < self.settings.interval)
            {
                return;
            }
            entry.logged_at = Some(now);
            entry.timing.logged += 1;
            entry.timing.name.clone()
        };
        let explainer = self
            .explainer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let runtime = tokio::runtime::Handle::try_current();
        match (explainer, runtime) {
            (Some(explain), Ok(runtime)) => {
                let log = Arc::downgrade(self);
                let sql = sql.to_owned();
                runtime.spawn(async move {
                    let plan = explain(sql.clone()).await;
                    let text = match &plan {
                        Ok(plan) => plan.clone(),
                        Err(why) => format!("(no plan: {why})"),
                    };
                    tracing::warn!(
                        target: "mod8_orm::slow",
                        statement = %due,
                        elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                        sql = %sql,
                        plan = %text,
                        "slow statement"
                    );
                    if let Some(log) = log.upgrade() {
                        let mut state = log.state();
                        if let Some(&i) = state.by_name.get(&due) {
                            state.entries[i].timing.plan = Some(text);
                        }
                    }
                });
            }
            _ => tracing::warn!(
                target: "mod8_orm::slow",
                statement = %due,
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                sql = %sql,
                plan = "(no plan: no connection to take it on)",
                "slow statement"
            ),
        }
    }
}

/// The statement name of `sql`: its verb, its first table and a hash of its folded text.
///
/// ```
/// let one = mod8_orm::statement_name("SELECT id FROM orders WHERE user_id = $1");
/// assert!(one.starts_with("select_orders_"));
/// // Value lists of any length fold to one statement.
/// assert_eq!(
///     mod8_orm::statement_name("INSERT INTO t (a, b) VALUES ($1, $2)"),
///     mod8_orm::statement_name("INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6)"),
/// );
/// ```
pub fn statement_name(sql: &str) -> String {
    let folded = fold(sql);
    let mut words = folded.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
    let verb = words
        .by_ref()
        .find(|w| !w.is_empty())
        .unwrap_or("statement")
        .to_ascii_lowercase();
    let table = table_of(&folded).unwrap_or_default();
    // FNV-1a: stable across builds and processes, unlike the std hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for b in folded.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    if table.is_empty() {
        format!("{verb}_{hash:08x}")
    } else {
        format!("{verb}_{table}_{hash:08x}")
    }
}

/// `sql` with whitespace collapsed, `$n` placeholders as `?` and repeated `?` / `(?)` lists
/// folded to one.
fn fold(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut space = false;
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    for (long, short) in [("?, ?", "?"), ("(?), (?)", "(?)")] {
        while out.contains(long) {
            out = out.replace(long, short);
        }
    }
    out
}

/// The first table a statement names (after `FROM`, `INTO` or `UPDATE`), lowercased.
fn table_of(sql: &str) -> Option<String> {
    let mut words = sql.split_whitespace();
    while let Some(w) = words.next() {
        if ["from", "into", "update"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k))
        {
            let t = words.next()?;
            let t: String = t
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            if !t.is_empty() {
                return Some(t.to_ascii_lowercase().replace('.', "_"));
            }
        }
    }
    None
}

/// The number of `$n` parameters `sql` refers to (its highest `n`).
pub(crate) fn parameter_count(sql: &str) -> usize {
    let mut highest = 0;
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            if end > start {
                if let Ok(n) = sql[start..end].parse::<usize>() {
                    highest = highest.max(n);
                }
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    highest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_placeholders_and_lists() {
        let a = statement_name("SELECT * FROM users WHERE id IN ($1, $2)");
        let b = statement_name("SELECT *\n  FROM users WHERE id IN ($1, $2, $3, $4)");
        assert_eq!(a, b);
        assert!(a.starts_with("select_users_"), "{a}");
        assert_ne!(a, statement_name("SELECT * FROM users WHERE email = $1"));
        assert!(statement_name("UPDATE orders SET status = $1").starts_with("update_orders_"));
    }

    #[test]
    fn parameters_are_counted_by_highest_number() {
        assert_eq!(parameter_count("SELECT $1, $12, $3"), 12);
        assert_eq!(parameter_count("SELECT '$' || 1"), 0);
    }

    #[tokio::test]
    async fn names_are_bounded() {
        let log = Arc::new(StatementLog::new(SlowStatementSettings::default()));
        for i in 0..MAX_STATEMENTS + 50 {
            log.observe(&format!("SELECT {i} FROM t{i}"), Duration::ZERO);
        }
        let timings = log.timings();
        assert_eq!(timings.len(), MAX_STATEMENTS + 1);
        let other = timings.iter().find(|t| t.name == OTHER).unwrap();
        assert_eq!(other.calls, 50);
    }

    #[tokio::test]
    async fn a_slow_statement_is_logged_once_per_interval_and_every_run_counted() {
        let log = Arc::new(StatementLog::new(
            SlowStatementSettings::default().with_threshold(Duration::from_millis(5)),
        ));
        for _ in 0..3 {
            log.observe("SELECT 1 FROM t", Duration::from_millis(10));
        }
        log.observe("SELECT 1 FROM t", Duration::from_millis(1));
        let t = &log.timings()[0];
        assert_eq!((t.calls, t.slow, t.logged), (4, 3, 1));
        assert_eq!(log.slow_counts(), vec![(t.name.clone(), 3)]);
    }
}
