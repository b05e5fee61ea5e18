//! The connection killed between handling and acknowledging, on the real RabbitMQ: the app's
//! own handlers ([`App::user_data_consumer`], [`App::notification_consumer`],
//! [`App::analytics_consumer`]) run under a wrapper that, after the first message of its
//! queue is handled (the effect done), has the broker close the app's AMQP connection —
//! `rabbitmqctl close_connection` on the connection carrying this test's own client-provided
//! name, never another client's — and only then returns, so the consumer's ack goes nowhere.
//! The broker delivers the message again; every effect must still be there once.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mod8_app::flows::analytics::EventInput;
use mod8_app::flows::registration::Registration;
use mod8_app::{App, AppConfig};
use mod8_mq::domain::{NotificationChannel, PublishOptions, UserData};
use mod8_mq::{Envelope, Handler, Outcome, Payload};
use serde_json::Value;
use uuid::Uuid;

use super::logged_events_of;
use super::support::*;

/// Closes the broker connections that carry one client-provided connection name.
struct Killer {
    connection_name: String,
    kills: AtomicU32,
}

/// Whether `value` holds the string `wanted` anywhere (rabbitmqctl's JSON shape of client
/// properties is nested tables).
fn holds_string(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Array(items) => items.iter().any(|v| holds_string(v, wanted)),
        Value::Object(map) => map.values().any(|v| holds_string(v, wanted)),
        _ => false,
    }
}

/// The standard output of `rabbitmqctl args`.
fn rabbitmqctl_output(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs (this test needs it, as root, next to the broker)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Killer {
    /// The broker's ids (`pid`, as `close_connection` takes them) of the connections whose
    /// client-provided name is `connection_name`. The JSON listing has the client properties
    /// but writes pids in a form `close_connection` does not read, so the connections are
    /// found there by their broker-side name (`client address -> server address`, unique) and
    /// their pids read from the plain listing.
    fn pids(&self) -> Vec<String> {
        let rows: Vec<Value> = serde_json::from_str(&rabbitmqctl_output(&[
            "-q",
            "--formatter",
            "json",
            "list_connections",
            "name",
            "client_properties",
        ]))
        .unwrap();
        let ours: Vec<String> = rows
            .iter()
            .filter(|row| holds_string(&row["client_properties"], &self.connection_name))
            .filter_map(|row| row["name"].as_str().map(str::to_owned))
            .collect();
        rabbitmqctl_output(&[
            "-q",
            "--no-table-headers",
            "list_connections",
            "pid",
            "name",
        ])
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(_, name)| ours.iter().any(|ours| ours == name.trim()))
        .map(|(pid, _)| pid.trim().to_owned())
        .collect()
    }

    /// Closes this test's connection and waits until the broker has dropped it (the client
    /// may already be connecting again under the same name: those are not waited for).
    fn kill(&self) {
        let pids = self.pids();
        assert!(
            !pids.is_empty(),
            "no RabbitMQ connection named {}",
            self.connection_name
        );
        for pid in &pids {
            mod8_testkit::rabbitmq::rabbitmqctl(&[
                "close_connection",
                pid,
                "mod8 exactly_once test: closed between handling and ack",
            ]);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.pids().iter().any(|p| pids.contains(p)) {
            assert!(Instant::now() < deadline, "the connection did not close");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kills.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs `inner`; after its first acknowledged message, kills the connection before
/// returning. Counts the finished handlings per message id.
struct KillBeforeAck<H> {
    inner: H,
    killer: Arc<Killer>,
    armed: AtomicBool,
    handled: Mutex<HashMap<Uuid, u32>>,
}

impl<H> KillBeforeAck<H> {
    fn new(inner: H, killer: Arc<Killer>) -> Arc<Self> {
        Arc::new(KillBeforeAck {
            inner,
            killer,
            armed: AtomicBool::new(true),
            handled: Mutex::new(HashMap::new()),
        })
    }

    fn handled(&self, id: Uuid) -> u32 {
        self.handled.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    fn handled_total(&self) -> u32 {
        self.handled.lock().unwrap().values().sum()
    }
}

#[async_trait]
impl<T: Payload, H: Handler<T>> Handler<T> for KillBeforeAck<H> {
    async fn handle(&self, message: &Envelope<T>) -> Outcome {
        let outcome = self.inner.handle(message).await;
        if outcome == Outcome::Ack && self.armed.swap(false, Ordering::SeqCst) {
            let killer = self.killer.clone();
            tokio::task::spawn_blocking(move || killer.kill())
                .await
                .unwrap();
        }
        *self.handled.lock().unwrap().entry(message.id).or_default() += 1;
        outcome
    }
}

async fn killed_between_handling_and_ack(mut config: AppConfig) {
    let killer = Arc::new(Killer {
        connection_name: name("mod8_exactly_once_kill"),
        kills: AtomicU32::new(0),
    });
    config.mq = config
        .mq
        .clone()
        .with_connection_name(killer.connection_name.clone());
    // Built, not started: the app's own handlers run under the wrapper instead.
    let app = App::build(config).await.unwrap();
    let topology = app.config.topology.clone();
    let users = KillBeforeAck::new(app.user_data_consumer(), killer.clone());
    let notes = KillBeforeAck::new(app.notification_consumer(), killer.clone());
    let events = KillBeforeAck::new(app.analytics_consumer(), killer.clone());
    let consumers = vec![
        topology
            .consumer(
                app.broker.clone(),
                topology.user_data_queue.clone(),
                users.clone(),
            )
            .start()
            .await
            .unwrap(),
        topology
            .consumer(
                app.broker.clone(),
                topology.notification_queue.clone(),
                notes.clone(),
            )
            .start()
            .await
            .unwrap(),
        topology
            .consumer(
                app.broker.clone(),
                topology.analytics_queue.clone(),
                events.clone(),
            )
            .start()
            .await
            .unwrap(),
    ];

    // User data: the profile and the welcome (a notification: the notification consumer's
    // first message, so its connection is killed after sending it).
    let username = name("kill");
    let registered = app
        .register(Registration {
            username: username.clone(),
            email: format!("{username}@example.com"),
            address: None,
        })
        .await
        .unwrap();
    let user = registered.user.id;
    let data = app
        .pipeline
        .publish_user_data(
            UserData {
                username: username.clone(),
                email: format!("{username}@example.com"),
                registration_date: chrono::Utc::now().date_naive(),
            },
            PublishOptions::new(),
        )
        .await
        .unwrap();
    eventually("the user data handled again after the kill", || async {
        users.handled(data) >= 2
    })
    .await;
    eventually("the welcome handled again after the kill", || async {
        notes.handled_total() >= 2
    })
    .await;
    assert_eq!(
        app.notifier.sent(NotificationChannel::Email),
        1,
        "one welcome, sent once"
    );
    assert!(matches!(
        app.docs.profile_by_username(&username).await,
        Ok(Some(_))
    ));

    // Analytics: the event logged, counted and applied to the profile.
    let accepted = app
        .record_event(EventInput {
            user_id: user,
            event_type: "click".into(),
            properties: HashMap::new(),
        })
        .await
        .unwrap();
    eventually("the event handled again after the kill", || async {
        events.handled(accepted.message_id) >= 2
    })
    .await;
    let logged = logged_events_of(&app, user).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    let counters = app.engagement_counters(user).await.unwrap();
    assert_eq!(counters.clicks, 1, "{counters:?}");
    let profile = app
        .docs
        .profile_by_username(&username)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        profile.metrics.event_counts.get("click"),
        Some(&1),
        "{:?}",
        profile.metrics
    );
    assert_eq!(
        killer.kills.load(Ordering::SeqCst),
        3,
        "one kill per message type"
    );
    assert_eq!(
        app.notifier.sent(NotificationChannel::Email),
        1,
        "still one welcome"
    );

    for consumer in consumers {
        consumer.shutdown().await.unwrap();
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_effect_once_when_the_connection_dies_before_the_ack() {
    let Some(config) = real_config("app kill before ack on real services").await else {
        return;
    };
    with_real(config, killed_between_handling_and_ack).await;
}
