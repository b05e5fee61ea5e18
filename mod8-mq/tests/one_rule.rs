//! The consumers apply the API's rules, not rules of their own: every input below gets the
//! same verdict (accepted with the same normalised value, or rejected naming the same field)
//! from the user-data consumer as from the relational store's validation that registration
//! runs, and from the analytics consumer as from the shared event rules the analytics API
//! runs. An input the API accepts is therefore never dead-lettered for its content.

use std::collections::HashMap;

use chrono::NaiveDate;
use mod8_mq::domain::{
    validate_analytics, validate_user, Analytics, AnalyticsConsumer, MemoryEventSink,
    MemoryProfileSink, UserData, UserDataConsumer,
};
use mod8_mq::{Envelope, Handler, Outcome};
use serde_json::{json, Value};
use uuid::Uuid;

/// Usernames and e-mail addresses of every class the rules tell apart.
const USERNAMES: &[&str] = &[
    "ada",
    " Grace ",
    "ＧＲＡＣＥ",
    "Jose\u{301}",
    "Иван",
    "Σωκράτης",
    "ada_l.o-ve",
    "",
    "a",
    "ab",
    "x",
    "ada lovelace",
    "gr\u{430}ce",
    "ada\u{200B}",
    "\u{202E}ecarg",
    "$where",
    "张伟伟",
    "___",
];

const EMAILS: &[&str] = &[
    "ada@example.org",
    " Ada@Example.ORG ",
    "$ada@example.org",
    "ada\u{200B}@example.org",
    "\u{202E}ada@example.org",
    "ada@example",
    "nope",
    "@example.org",
    "a da@example.org",
];

fn long_inputs() -> Vec<String> {
    vec![
        "x".repeat(50),
        "x".repeat(51),
        "é".repeat(32),
        "é".repeat(33),
        "x".repeat(65),
    ]
}

fn user(username: &str, email: &str) -> UserData {
    UserData {
        username: username.into(),
        email: email.into(),
        registration_date: NaiveDate::from_ymd_opt(2026, 1, 2).expect("a date"),
    }
}

/// `Ok(value)` or `Err(field)`.
type Verdict = Result<String, String>;

fn orm_verdict(r: mod8_orm::Result<String>) -> Verdict {
    r.map_err(|e| match e {
        mod8_orm::Error::Validation { field, .. } => field,
        other => panic!("not a validation error: {other:?}"),
    })
}

fn mq_field(e: mod8_mq::Error) -> String {
    match e {
        mod8_mq::Error::Validation { field, .. } => field,
        other => panic!("not a validation error: {other:?}"),
    }
}

#[test]
fn the_user_data_consumer_and_registration_give_the_same_verdicts() {
    let mut usernames: Vec<String> = USERNAMES.iter().map(|s| s.to_string()).collect();
    usernames.extend(long_inputs());
    for name in &usernames {
        let api = orm_verdict(mod8_orm::validate::username(name));
        let consumer = validate_user(&user(name, "ada@example.org"), Uuid::nil())
            .map(|p| p.username)
            .map_err(mq_field);
        assert_eq!(consumer, api, "username {name:?}");
    }
    for email in EMAILS {
        let api = orm_verdict(mod8_orm::validate::email(email));
        let consumer = validate_user(&user("ada", email), Uuid::nil())
            .map(|p| p.email)
            .map_err(mq_field);
        assert_eq!(consumer, api, "email {email:?}");
    }
}

#[tokio::test]
async fn the_user_data_consumer_dead_letters_exactly_what_registration_rejects() {
    let consumer = UserDataConsumer::new(MemoryProfileSink::default());
    for name in USERNAMES {
        let api_accepts = mod8_orm::validate::username(name).is_ok();
        let outcome = consumer
            .handle(&Envelope::new(user(name, "ada@example.org")))
            .await;
        match outcome {
            Outcome::Ack => assert!(api_accepts, "{name:?} stored but refused by the API"),
            Outcome::Reject { reason } => {
                assert!(
                    !api_accepts,
                    "{name:?} accepted by the API, dead-lettered: {reason}"
                )
            }
            Outcome::Retry { reason } => panic!("{name:?}: retry {reason}"),
        }
    }
}

fn analytics(event_type: &str, properties: Value) -> Analytics {
    let Value::Object(map) = properties else {
        panic!("properties must be an object")
    };
    Analytics {
        event_type: event_type.into(),
        user_id: Uuid::new_v4().to_string(),
        properties: map.into_iter().collect::<HashMap<_, _>>(),
    }
}

fn events() -> Vec<Analytics> {
    let deep = json!({"a": {"b": {"c": {"d": {"e": 1}}}}});
    vec![
        analytics("page_view", json!({})),
        analytics(
            "purchase",
            json!({"product": "p1", "price": 9.5, "tags": ["a", "b"]}),
        ),
        analytics("", json!({})),
        analytics("Page View", json!({})),
        analytics("click", json!({"$where": 1})),
        analytics("click", json!({"a.b": 1})),
        analytics("click", json!({"a\u{0}": 1})),
        analytics("click", json!({"ok": {"$gt": 1}})),
        analytics("click", json!({"big": vec![0; 7_000]})),
        analytics("click", json!({"long": "x".repeat(5_000)})),
        analytics("click", deep),
    ]
}

#[tokio::test]
async fn the_analytics_consumer_dead_letters_exactly_what_the_shared_rules_reject() {
    let sink = MemoryEventSink::default();
    let consumer = AnalyticsConsumer::new(sink.clone());
    let mut accepted = 0;
    for event in events() {
        let rules = mod8_rules::event_type(&event.event_type)
            .and_then(|()| mod8_rules::properties("properties", &event.properties))
            .map_err(|e| e.field);
        assert_eq!(
            validate_analytics(&event).map_err(mq_field),
            rules,
            "{event:?}"
        );
        match consumer.handle(&Envelope::new(event.clone())).await {
            Outcome::Ack => {
                assert!(rules.is_ok(), "{event:?}");
                accepted += 1;
            }
            Outcome::Reject { .. } => assert!(rules.is_err(), "{event:?}"),
            Outcome::Retry { reason } => panic!("retry: {reason}"),
        }
    }
    assert_eq!(accepted, 2);
    assert_eq!(sink.events().len(), 2, "nothing rejected was stored");
}
