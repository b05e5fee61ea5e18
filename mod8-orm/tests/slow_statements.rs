//! The slow-statement log on SQLite and on the real PostgreSQL: with a threshold of 0 ms every
//! statement is slow, so each run is counted, and each statement is logged once per interval,
//! with its plan, as a `WARN` event of target `mod8_orm::slow`.
//!
//! One test in its own binary: it installs a process-wide subscriber that keeps those events.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mod8_orm::{Database, OrmConfig, SlowStatementSettings, StatementTiming};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The fields of one `mod8_orm::slow` event.
type Event = Vec<(String, String)>;

static EVENTS: OnceLock<Arc<Mutex<Vec<Event>>>> = OnceLock::new();

/// Keeps every event of target `mod8_orm::slow`.
struct Keep(Arc<Mutex<Vec<Event>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Keep {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "mod8_orm::slow" {
            return;
        }
        struct Fields(Event);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push((field.name().to_owned(), format!("{value:?}")));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.push((field.name().to_owned(), value.to_owned()));
            }
        }
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
}

fn events() -> Arc<Mutex<Vec<Event>>> {
    EVENTS
        .get_or_init(|| {
            let events = Arc::new(Mutex::new(Vec::new()));
            tracing_subscriber::registry()
                .with(Keep(events.clone()))
                .init();
            events
        })
        .clone()
}

fn field<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Every statement slow, logged at most once an hour.
fn always_slow() -> SlowStatementSettings {
    SlowStatementSettings::default()
        .with_threshold(Duration::ZERO)
        .with_interval(Duration::from_secs(3600))
}

/// Looks a user up three times; the statement is counted three times and logged once, with
/// a plan that `plan_ok` accepts.
async fn logged_once_with_plan(db: &dyn Database, plan_ok: impl Fn(&str) -> bool) {
    let events = events();
    let id = mod8_orm::uuid::Uuid::new_v4();
    for _ in 0..3 {
        assert!(db.get_user(id).await.is_err(), "no such user");
    }
    let log = db
        .statement_log()
        .expect("SQL stores time their statements");
    assert_eq!(log.settings(), always_slow());
    let by_id = |t: &StatementTiming| t.sql.contains("FROM users WHERE id = $1");
    let timing = log
        .timings()
        .into_iter()
        .find(by_id)
        .expect("get_user's statement");
    assert_eq!((timing.calls, timing.slow, timing.logged), (3, 3, 1));
    assert!(log.slow_counts().contains(&(timing.name.clone(), 3)));
    // The plan is taken after the statement, on a connection of its own.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let plan = loop {
        let t = log.timings().into_iter().find(by_id).unwrap();
        if let Some(plan) = t.plan {
            break plan;
        }
        assert!(std::time::Instant::now() < deadline, "no plan was taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(plan_ok(&plan), "{plan}");
    let logged: Vec<Event> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| field(e, "statement") == Some(timing.name.as_str()))
        .cloned()
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(field(&logged[0], "plan"), Some(plan.as_str()));
    assert!(field(&logged[0], "sql").is_some_and(|sql| sql.contains("FROM users WHERE id = $1")));
    events.lock().unwrap().clear();
}

#[tokio::test]
async fn a_slow_statement_is_counted_and_logged_once_with_its_plan() {
    // SQLite: EXPLAIN QUERY PLAN.
    let db = OrmConfig::new("sqlite::memory:")
        .with_slow_statements(always_slow())
        .connect()
        .await
        .unwrap();
    logged_once_with_plan(&*db, |plan| plan.contains("users")).await;
    db.close().await;

    // PostgreSQL: the generic plan as EXPLAIN (FORMAT JSON), in a database of this run's own.
    let Some(test_db) = mod8_orm::testing::TestDb::postgres_from_env("orm slow statements").await
    else {
        return;
    };
    let url = test_db.url().to_owned();
    test_db
        .run(|_| {
            Box::pin(async move {
                let db = OrmConfig::new(&url)
                    .with_slow_statements(always_slow())
                    .connect()
                    .await
                    .unwrap();
                logged_once_with_plan(&*db, |plan| {
                    let json: serde_json::Value = serde_json::from_str(plan).unwrap();
                    json[0]["Plan"]["Node Type"].is_string() && plan.contains("users")
                })
                .await;
                db.close().await;
            })
        })
        .await;
}
