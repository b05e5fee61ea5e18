//! A restart: an app handles a registration, a notification and an event, shuts down; a new
//! app on the same stores and broker gets each message again (same ids, as the broker
//! redelivers what a stopped process had not acknowledged) and repeats no effect. Real
//! services only: the embedded stores live and die with the process.

use std::collections::HashMap;

use mod8_app::flows::analytics::EventInput;
use mod8_app::{AppConfig, ConsumerCounts};
use mod8_mq::domain::{Analytics, Notification, NotificationChannel, PublishOptions, UserData};
use mod8_mq::Envelope;
use uuid::Uuid;

use super::support::*;
use super::{finished, logged_events};

/// What the first app did, to send again to the second.
struct Sent {
    username: String,
    user: Uuid,
    registration: Envelope<UserData>,
    notification: Envelope<Notification>,
    event: Envelope<Analytics>,
}

async fn first_life(config: AppConfig) -> Sent {
    let s = Server::start(config).await;
    let username = name("again");
    let user = id_of(&s.register(&username).await);
    eventually("the welcome", || async {
        s.app.notifier.sent(NotificationChannel::Email) == 1
    })
    .await;
    let registration = Envelope::new(UserData {
        username: username.clone(),
        email: format!("{username}@example.com"),
        registration_date: chrono::Utc::now().date_naive(),
    });
    let notification = Envelope::new(Notification {
        recipient: "ada@example.com".into(),
        subject: "your order".into(),
        content: "is on its way".into(),
        channel: NotificationChannel::Push,
    });
    let route = s
        .app
        .pipeline
        .topology()
        .notification_route(&notification.payload);
    s.app
        .pipeline
        .producer()
        .send(&notification, &route)
        .await
        .unwrap();
    eventually("the notification", || async {
        s.app.notifier.sent(NotificationChannel::Push) == 1
    })
    .await;
    let accepted = s
        .app
        .record_event(EventInput {
            user_id: user,
            event_type: "click".into(),
            properties: HashMap::new(),
        })
        .await
        .unwrap();
    let mut event = Envelope::new(Analytics {
        event_type: "click".into(),
        user_id: user.to_string(),
        properties: HashMap::new(),
    });
    event.id = accepted.message_id;
    eventually("the event stored", || async {
        logged_events(&s, user).await.len() == 1
    })
    .await;
    s.app.shutdown().await;
    Sent {
        username,
        user,
        registration,
        notification,
        event,
    }
}

async fn a_restarted_app_repeats_no_effect(config: AppConfig) {
    let sent = first_life(config.clone()).await;
    let s = Server::start(config).await;
    let p = s.app.pipeline.clone();
    let topology = p.topology().clone();
    // The first app's messages again, as the broker redelivers them to the new process.
    p.producer()
        .send(&sent.registration, &topology.user_data_route())
        .await
        .unwrap();
    p.producer()
        .send(
            &sent.notification,
            &topology.notification_route(&sent.notification.payload),
        )
        .await
        .unwrap();
    p.producer()
        .send(&sent.event, &topology.analytics_route())
        .await
        .unwrap();
    eventually("the user data handled", || async {
        finished(&s, ConsumerCounts::USER_DATA).await >= 1
    })
    .await;
    eventually("the event handled", || async {
        finished(&s, ConsumerCounts::ANALYTICS).await >= 1
    })
    .await;
    // A later notification: once it is sent, a welcome the user data published before it,
    // and the redelivered notification, were handled too.
    p.publish_notification(
        Notification {
            recipient: "ops@example.com".into(),
            subject: "sentinel".into(),
            content: "after the redeliveries".into(),
            channel: NotificationChannel::Sms,
        },
        PublishOptions::new(),
    )
    .await
    .unwrap();
    eventually("the sentinel", || async {
        s.app.notifier.sent(NotificationChannel::Sms) == 1
    })
    .await;
    eventually("the notifications settled", || async {
        finished(&s, ConsumerCounts::NOTIFICATIONS).await >= 2
    })
    .await;
    assert_eq!(
        s.app.notifier.sent(NotificationChannel::Push),
        0,
        "the notification is not sent again"
    );
    assert_eq!(
        s.app.notifier.sent(NotificationChannel::Email),
        0,
        "no second welcome"
    );
    assert_eq!(
        finished(&s, ConsumerCounts::NOTIFICATIONS).await,
        2,
        "no welcome published: the redelivered notification and the sentinel only"
    );
    assert!(matches!(
        s.app.docs.profile_by_username(&sent.username).await,
        Ok(Some(_))
    ));
    let events = logged_events(&s, sent.user).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let counters = s.app.engagement_counters(sent.user).await.unwrap();
    assert_eq!(counters.clicks, 1, "{counters:?}");
    let profile = s
        .app
        .docs
        .profile_by_username(&sent.username)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        profile.metrics.event_counts.get("click"),
        Some(&1),
        "{:?}",
        profile.metrics
    );
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_app_on_the_same_stores_repeats_no_effect() {
    let Some(config) = real_config("app restart exactly once on real services").await else {
        return;
    };
    with_real(config, a_restarted_app_repeats_no_effect).await;
}
