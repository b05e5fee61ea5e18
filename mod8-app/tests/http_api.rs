//! End-to-end tests of the three flows through the HTTP API: an in-process server on a random
//! port, driven over real HTTP. Every case runs on the embedded defaults, and again on the
//! real services when all four `MOD8_*_URL` variables are set (each run with its own
//! database, collection database, cache prefix and queue names, all removed afterwards).
// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;

// ---- the cases, each written once -------------------------------------------------------

async fn registration_and_its_errors(s: &Server) {
    // Somebody has bought something, so there is something trending to recommend.
    let buyer = id_of(&s.register(&name("buyer")).await);
    let books = s.app.sql.products(Some("books")).await.unwrap();
    buy(s, buyer, &[books[0].id]).await;
    s.app.invalidate_model().await;

    let ada = name("ada");
    let body = s.register(&ada).await;
    assert_eq!(body["user"]["username"], ada.as_str());
    // The new user's own token: it speaks for that user, with the user scope.
    let claims = s.app.auth.verify(&token_of(&body)).unwrap();
    assert_eq!(claims.sub, id_of(&body).to_string());
    assert_eq!(claims.scope, mod8_app::http::auth::Scope::User);
    assert!(body["user"]["address_id"].is_string());
    let recs = body["recommendations"]["recommendations"]
        .as_array()
        .unwrap();
    assert_eq!(
        recs[0]["product_id"],
        books[0].id.to_string().as_str(),
        "a new user gets the trending product"
    );
    assert_eq!(body["recommendations"]["cached"], false);

    // Duplicate username, duplicate email: 409 naming the field.
    let (status, body) = s
        .post(
            "/api/users",
            json!({"username": ada, "email": format!("x{ada}@example.com")}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_of(&body), ("conflict", Some("username")));
    let (status, body) = s
        .post(
            "/api/users",
            json!({"username": name("other"), "email": format!("{ada}@example.com")}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_of(&body), ("conflict", Some("email")));

    // Invalid input: 422 naming the field; nothing stored.
    let bad = name("bad");
    let (status, body) = s
        .post(
            "/api/users",
            json!({"username": bad, "email": "not-an-email"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("email")));
    let (status, body) = s
        .post(
            "/api/users",
            json!({"username": "", "email": "e@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("username")));

    // Unknown city: the transaction is rolled back — the username stays free.
    let ghost = name("ghost");
    let (status, body) = s
        .post(
            "/api/users",
            json!({"username": ghost, "email": format!("{ghost}@example.com"),
                   "address": {"street": "x", "postal_code": "1", "city": "Atlantis", "country_code": "DE"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("address.city")));
    assert!(s
        .app
        .sql
        .find_user_by_email(&format!("{ghost}@example.com"))
        .await
        .unwrap()
        .is_none());
    s.register(&ghost).await;

    // Unreadable bodies: 400; wrong shape: 422; too large: 413 — always the error body.
    let r = s
        .http
        .post(format!("{}/api/users", s.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&r.json::<Value>().await.unwrap()).0, "bad_request");
    let (status, body) = s.post("/api/users", json!({"username": 5})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let huge = "x".repeat(mod8_app::http::BODY_LIMIT + 1);
    let (status, body) = s
        .post("/api/users", json!({"username": huge, "email": "a@b.co"}))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(error_of(&body).0, "payload_too_large");
}

async fn registration_reaches_the_document_store(s: &Server) {
    let grace = name("grace");
    let body = s.register(&grace).await;
    let id = body["user"]["id"].as_str().unwrap().to_owned();
    // Outbox relay → broker → UserDataConsumer → profile document, then a welcome email.
    eventually("the profile document", || async {
        matches!(s.app.docs.profile_by_username(&grace).await, Ok(Some(p)) if p.user_id == id)
    })
    .await;
    eventually("the outbox to drain", || async {
        s.app.outbox.backlog() == 0
    })
    .await;
}

async fn events_flow_to_the_log_and_dashboard(s: &Server) {
    let user = s.register(&name("linus")).await;
    let id = user["user"]["id"].as_str().unwrap().to_owned();
    // The user records its own events with its own token.
    let own = Some(token_of(&user));
    let own = own.as_deref();
    for t in ["session", "page_view", "page_view", "click"] {
        let (status, body) = s
            .post_as(
                own,
                "/api/events",
                json!({"user_id": id, "event_type": t, "properties": {"page": "/home"}}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (_, body) = s
        .post_as(
            own,
            "/api/events",
            json!({"user_id": id, "event_type": "search"}),
        )
        .await;
    assert_eq!(body["counters"]["page_views"], 2);
    assert_eq!(body["counters"]["searches"], 1);

    // Stored by the analytics consumer.
    eventually("5 events in the event log", || async {
        let filter = mod8_docstore::EventFilter {
            user_id: Some(id.clone()),
            ..Default::default()
        };
        use futures::TryStreamExt;
        let Ok(stream) = s.app.docs.export_events(filter, 100).await else {
            return false;
        };
        let batches: Vec<Vec<_>> = stream.try_collect().await.unwrap_or_default();
        batches.iter().map(Vec::len).sum::<usize>() == 5
    })
    .await;
    // ...and counted in the per-user summary personalisation reads (written just after the
    // event itself, so it may trail the log by a moment).
    let today = chrono::Utc::now().date_naive();
    let days = mod8_docstore::DayRange::ending(today, 2);
    eventually("5 events in the activity summary", || async {
        matches!(s.app.docs.activity_summary(&id, days).await, Ok(a) if a.total() == 5)
    })
    .await;
    let summary = s.app.docs.activity_summary(&id, days).await.unwrap();
    assert_eq!(summary.count("page_view"), 2, "{summary:?}");
    assert_eq!(summary.count("session"), 1, "{summary:?}");
    // ...and on the live dashboard (the second subscriber of the fanout), by type. The app is
    // this test's own, so these are all the events it has seen.
    eventually("5 events on the live dashboard", || async {
        s.app.live.snapshot().total_events == 5
    })
    .await;
    let dashboard = s.app.live.snapshot();
    assert_eq!(
        dashboard.events_by_type,
        vec![
            ("page_view".to_owned(), 2),
            ("click".to_owned(), 1),
            ("search".to_owned(), 1),
            ("session".to_owned(), 1),
        ]
    );
    assert_eq!(
        dashboard.alerts, 0,
        "5 events are far below the default threshold"
    );

    // Bad input and unknown users.
    let (status, body) = s
        .post(
            "/api/events",
            json!({"user_id": id, "event_type": "Not Valid"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("event_type")));
    let (status, body) = s
        .post(
            "/api/events",
            json!({"user_id": id, "event_type": "click", "properties": {"$where": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("properties")));
    let (status, body) = s
        .post(
            "/api/events",
            json!({"user_id": uuid::Uuid::new_v4(), "event_type": "click"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

async fn personalisation_is_cached_and_invalidated(s: &Server) {
    // Two customers bought books 0 and 1 together: they are co-purchased.
    let books = s.app.sql.products(Some("books")).await.unwrap();
    for n in ["alan", "edsger"] {
        let other = id_of(&s.register(&name(n)).await);
        buy(s, other, &[books[0].id, books[1].id]).await;
    }
    let user = s.register(&name("margaret")).await;
    let id = id_of(&user);
    // She reads her own data with her own token.
    let own = Some(token_of(&user));
    let own = own.as_deref();
    // Registration cached the first answer.
    let (status, first) = s
        .get_as(own, &format!("/api/users/{id}/recommendations"))
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["cached"], true);

    // Her purchase changes her data: the cached answer is dropped and recomputed (on the
    // refreshed co-purchase model); book 1 comes first and book 0 is never recommended.
    buy(s, id, &[books[0].id]).await;
    s.app.invalidate_model().await;
    let (_, cold) = s
        .get_as(own, &format!("/api/users/{id}/recommendations"))
        .await;
    assert_eq!(cold["cached"], false, "{cold}");
    let recs = cold["recommendations"].as_array().unwrap();
    assert_eq!(
        recs[0]["product_id"],
        books[1].id.to_string().as_str(),
        "{cold}"
    );
    assert!(recs
        .iter()
        .all(|r| r["product_id"] != books[0].id.to_string().as_str()));
    assert!(recs
        .iter()
        .all(|r| (0.0..=1.0).contains(&r["score"].as_f64().unwrap())));
    let (_, warm) = s
        .get_as(own, &format!("/api/users/{id}/recommendations"))
        .await;
    assert_eq!(warm["cached"], true);
    assert_eq!(warm["recommendations"], cold["recommendations"]);

    let (status, profile) = s.get_as(own, &format!("/api/users/{id}/profile")).await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert!(profile["profile"]["total_spend"].as_f64().unwrap() > 0.0);
    assert_eq!(profile["predictions"].as_array().unwrap().len(), 3);

    let (status, body) = s
        .get(&format!(
            "/api/users/{}/recommendations",
            uuid::Uuid::new_v4()
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s.get("/api/users/not-a-uuid/profile").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_of(&body), ("validation", Some("id")));
}

async fn insights_metrics_and_health(s: &Server) {
    s.register(&name("barbara")).await;
    // The report is the one the insights worker last stored (at start, before anyone
    // registered, then every refresh interval); run its pass now, as the next tick would.
    let stored = s.app.refresh_insights().await.unwrap();
    let (status, report) = s.get("/api/insights").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(report["total_users"].as_u64().unwrap() >= 1);
    let computed_at: chrono::DateTime<chrono::Utc> =
        report["computed_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(computed_at, stored.computed_at, "{report}");

    let r = s
        .http
        .get(format!("{}/metrics", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let text = r.text().await.unwrap();
    let families = parse_openmetrics(&text);
    for (family, kind) in [
        ("mod8_http_request_duration_seconds", "histogram"),
        ("mod8_query_duration_seconds", "histogram"),
        ("mod8_cache_hits", "counter"),
        ("mod8_cache_misses", "counter"),
        ("mod8_cache_hit_ratio", "gauge"),
        ("mod8_queue_depth", "gauge"),
        ("mod8_dead_letters", "gauge"),
        ("mod8_outbox_backlog", "gauge"),
    ] {
        assert_eq!(
            families.get(family).map(|f| f.kind.as_str()),
            Some(kind),
            "{family} missing from /metrics or of the wrong type:\n{text}"
        );
        assert!(
            !families[family].samples.is_empty(),
            "{family} has no samples:\n{text}"
        );
    }
    // The registration above was a cache lookup at least once, and was timed.
    assert!(families["mod8_cache_misses"].samples[0].1 >= 1.0, "{text}");
    assert!(families["mod8_http_request_duration_seconds"]
        .samples
        .iter()
        .any(|(name, v)| name.ends_with("_count") && *v >= 1.0));

    let (status, health) = s.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    for dep in ["sql", "docs", "cache", "broker"] {
        assert_eq!(
            health["dependencies"][dep]["status"], "up",
            "{dep}: {health}"
        );
    }
    let (status, body) = s.get("/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_of(&body).0, "not_found");

    // A known route with the wrong method: 405 with the error body, and `allow` still says
    // which methods the route takes.
    let r = s
        .http
        .delete(format!("{}/api/users", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = r.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("POST"), "{allow}");
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_of(&body).0, "method_not_allowed", "{body}");
}

/// The live dashboard's alert, end to end: the threshold-th event of a user within the window
/// publishes an alert notification, which the notification consumer sends; events above the
/// threshold do not alert again.
async fn an_activity_alert_is_published_and_sent(s: &Server) {
    use mod8_mq::domain::NotificationChannel::Email;
    assert_eq!(s.app.config.alert_threshold, 3);
    let id = id_of(&s.register(&name("alerted")).await);
    eventually("the welcome email", || async {
        s.app.notifier.sent(Email) == 1
    })
    .await;
    let event = json!({"user_id": id, "event_type": "page_view"});
    for _ in 0..2 {
        let (status, body) = s.post("/api/events", event.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    eventually("2 events on the dashboard", || async {
        s.app.live.snapshot().total_events == 2
    })
    .await;
    assert_eq!(s.app.live.snapshot().alerts, 0);
    assert_eq!(
        s.app.notifier.sent(Email),
        1,
        "no alert below the threshold"
    );

    let (status, body) = s.post("/api/events", event.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    eventually("the alert email to be sent", || async {
        s.app.notifier.sent(Email) == 2
    })
    .await;
    // The dashboard counts the alert once the broker confirmed its publish; on RabbitMQ the
    // notification consumer can send the email before that confirm reaches the publisher.
    eventually("the alert counted on the dashboard", || async {
        s.app.live.snapshot().alerts == 1
    })
    .await;

    let (status, body) = s.post("/api/events", event).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    eventually("4 events on the dashboard", || async {
        s.app.live.snapshot().total_events == 4
    })
    .await;
    // Give a wrongly raised second alert the time to travel through the notification queue.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(s.app.live.snapshot().alerts, 1, "one alert per crossing");
    assert_eq!(s.app.notifier.sent(Email), 2, "one alert per crossing");
}

mod alerts {
    fn with_threshold_3(mut config: mod8_app::AppConfig) -> mod8_app::AppConfig {
        config.alert_threshold = 3;
        config.alert_window = std::time::Duration::from_secs(60);
        config
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded() {
        let config = with_threshold_3(mod8_app::AppConfig::embedded());
        let server = super::Server::start(config).await;
        super::an_activity_alert_is_published_and_sent(&server).await;
        server.app.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_services() {
        let Some(config) = super::real_config("app alert on real services").await else {
            return;
        };
        super::with_real(with_threshold_3(config), |config| async move {
            let server = super::Server::start(config).await;
            super::an_activity_alert_is_published_and_sent(&server).await;
            server.app.shutdown().await;
        })
        .await;
    }
}

/// One metric family of an OpenMetrics exposition: its type and its samples (sample name with
/// suffix, value).
#[derive(Debug)]
struct Family {
    kind: String,
    samples: Vec<(String, f64)>,
}

/// Parses an OpenMetrics text exposition strictly enough to catch what Prometheus rejects:
/// every family declared once (`# TYPE`), before its samples, which are contiguous; every
/// sample `name{labels} value` with a numeric value and a name of the family being declared
/// (plus a suffix its type allows); a single `# EOF`, on the last line.
fn parse_openmetrics(text: &str) -> std::collections::HashMap<String, Family> {
    let mut families = std::collections::HashMap::<String, Family>::new();
    let mut current: Option<String> = None;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"# EOF"),
        "# EOF must end the text:\n{text}"
    );
    assert_eq!(
        lines.iter().filter(|l| **l == "# EOF").count(),
        1,
        "one # EOF only:\n{text}"
    );
    for line in &lines[..lines.len() - 1] {
        assert!(!line.is_empty(), "blank line in the exposition:\n{text}");
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (keyword, name) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            match keyword {
                "TYPE" => {
                    let kind = parts.next().unwrap_or("").to_owned();
                    assert!(
                        families
                            .insert(
                                name.to_owned(),
                                Family {
                                    kind,
                                    samples: Vec::new()
                                }
                            )
                            .is_none(),
                        "family {name} declared twice:\n{text}"
                    );
                    current = Some(name.to_owned());
                }
                "HELP" | "UNIT" => assert!(
                    !families.contains_key(name) || current.as_deref() == Some(name),
                    "{keyword} for {name} outside its family:\n{text}"
                ),
                other => panic!("unknown comment {other:?} in {line:?}"),
            }
            continue;
        }
        // name{labels} value — label values are quoted and may hold spaces and braces.
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("sample without a value: {line:?}"),
        };
        let rest = if let Some(labels) = rest.strip_prefix('{') {
            let mut in_quotes = false;
            let mut escaped = false;
            let mut end = None;
            for (i, c) in labels.char_indices() {
                match (c, in_quotes, escaped) {
                    (_, true, true) => escaped = false,
                    ('\\', true, false) => escaped = true,
                    ('"', _, false) => in_quotes = !in_quotes,
                    ('}', false, _) => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
            &labels[end + 1..]
        } else {
            rest
        };
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
        let value: f64 = value
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?} is not a number"));
        let family_name = current
            .as_deref()
            .unwrap_or_else(|| panic!("sample {line:?} before any # TYPE"));
        let family = families.get_mut(family_name).unwrap();
        let suffixes: &[&str] = match family.kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        assert!(
            suffixes
                .iter()
                .any(|s| name.strip_suffix(s) == Some(family_name) || (s.is_empty() && name == family_name)),
            "sample {name} does not belong to the family {family_name} ({}) being declared:\n{text}",
            family.kind
        );
        family.samples.push((name.to_owned(), value));
    }
    families
}

both_backends!(
    "app http api on real services";
    registration_and_its_errors,
    registration_reaches_the_document_store,
    events_flow_to_the_log_and_dashboard,
    personalisation_is_cached_and_invalidated,
    insights_metrics_and_health,
);
