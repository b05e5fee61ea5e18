//! mod8-docstore end to end: setup, bulk insert of realistic profiles and events, then every
//! operation with readable output.
//!
//! `cargo run -p mod8-examples --example docstore` runs in memory; with `MOD8_MONGODB_URL` set
//! it uses that server (in a fresh database, dropped at the end). Operations the server does
//! not support are shown as such, with the server's message.

// An example, like a test: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use mod8_docstore::chrono::{Duration, TimeZone, Utc};
use mod8_docstore::futures::StreamExt;
use mod8_docstore::{
    DocStoreConfig, DynDocStore, Error, Event, EventFilter, EventMetadata, ExpertiseLevel, Geo,
    GeoPoint, LogEntry, MemoryDocStore, MetricsUpdate, MongoDocStore, ProfileDocument, SessionInfo,
    SetupOptions, Subscription, SubscriptionStatus, TimeWindow,
};

const INTERESTS: [&str; 6] = ["rust", "databases", "ml", "devops", "design", "security"];
const CATEGORIES: [&str; 4] = ["books", "courses", "hardware", "software"];
const TYPES: [&str; 5] = ["page_view", "search", "click", "add_to_cart", "share"];
const CITIES: [(&str, &str, f64, f64); 4] = [
    ("DE", "Berlin", 13.405, 52.52),
    ("DE", "Potsdam", 13.0645, 52.3906),
    ("FR", "Paris", 2.3522, 48.8566),
    ("GB", "London", -0.1276, 51.5072),
];

/// A tiny deterministic generator, so every run prints the same story.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn show<T>(what: &str, result: Result<T, Error>, print: impl FnOnce(T)) -> Result<(), Error> {
    match result {
        Ok(v) => {
            println!("\n== {what}");
            print(v);
            Ok(())
        }
        Err(e @ Error::Unsupported { .. }) => {
            println!("\n== {what}\n   not supported by this server: {e}");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (store, mongo): (DynDocStore, Option<MongoDocStore>) =
        match std::env::var("MOD8_MONGODB_URL") {
            Ok(url) if !url.trim().is_empty() => {
                let db = format!("mod8_example_{}", std::process::id());
                let m = MongoDocStore::connect(&DocStoreConfig::new(url).with_database(db)).await?;
                (Arc::new(m.clone()), Some(m))
            }
            _ => (Arc::new(MemoryDocStore::new()), None),
        };
    println!("backend: {}", store.backend());

    let report = store.setup(&SetupOptions::default()).await?;
    println!("\n== setup");
    for step in &report.steps {
        println!("   {:<45} {:?}", step.target, step.outcome);
    }
    let again = store.setup(&SetupOptions::default()).await?;
    println!("   second run changed anything: {}", again.changed());

    // Profiles: 200 users signed up over three months, plus two bad ones.
    let mut rng = Lcg(7);
    let start = Utc.with_ymd_and_hms(2026, 8, 1, 9, 0, 0).unwrap();
    let mut profiles: Vec<ProfileDocument> = (0..200)
        .map(|i| {
            let mut p = ProfileDocument::new(
                format!("{}", 1000 + i),
                format!("user{i:03}"),
                format!("user{i:03}@example.com"),
            )
            .created_at(start + Duration::hours(rng.next(24 * 90) as i64))
            .with_interests([
                INTERESTS[rng.next(6) as usize],
                INTERESTS[rng.next(6) as usize],
            ]);
            p.profile.expertise_level = match rng.next(4) {
                0 => ExpertiseLevel::Beginner,
                1 => ExpertiseLevel::Intermediate,
                2 => ExpertiseLevel::Advanced,
                _ => ExpertiseLevel::Expert,
            };
            p.profile.project_count = rng.next(20) as i64;
            p
        })
        .collect();
    profiles.push(ProfileDocument::new("9998", "user001", "dup@example.com"));
    profiles.push(ProfileDocument::new("9999", "broken", "no-at-sign"));
    let bulk = store.insert_profiles(profiles).await?;
    println!("\n== bulk insert profiles");
    println!("   inserted {}", bulk.inserted_ids.len());
    for f in &bulk.failures {
        println!("   failed #{}: {}", f.index, f.error);
    }

    // Events: 5,000 over the same three months; a fifth are purchases, a third have a place.
    let events: Vec<Event> = (0..5_000)
        .map(|_| {
            let user = format!("{}", 1000 + rng.next(200));
            let at = start + Duration::minutes(rng.next(60 * 24 * 90) as i64);
            let mut e = if rng.next(5) == 0 {
                let price = (500 + rng.next(20_000)) as f64 / 100.0;
                Event::purchase(
                    user,
                    format!("sku-{}", rng.next(50)),
                    CATEGORIES[rng.next(4) as usize],
                    price,
                )
            } else {
                Event::new(user, TYPES[rng.next(5) as usize]).with_metadata(EventMetadata {
                    product: Some(format!("sku-{}", rng.next(50))),
                    ..EventMetadata::default()
                })
            }
            .at(at);
            if rng.next(3) == 0 {
                let (country, city, lon, lat) = CITIES[rng.next(4) as usize];
                e = e
                    .with_geo(Geo {
                        country: Some(country.into()),
                        city: Some(city.into()),
                        location: Some(GeoPoint::new(lon, lat)),
                    })
                    .with_session(SessionInfo {
                        device: Some("mobile".into()),
                        os: Some("android".into()),
                        app_version: Some("3.2.1".into()),
                    });
            }
            e
        })
        .collect();
    let logged = store.log_events(events).await?;
    println!(
        "\n== bulk log events\n   inserted {}",
        logged.inserted_ids.len()
    );
    store.log_event(Event::new("1000", "login")).await?; // timestamp defaults to now

    show(
        "profile by username",
        store.profile_by_username("user007").await,
        |p| {
            if let Some(p) = p {
                println!(
                    "   {} <{}> since {}, interests {:?}, {:?}",
                    p.username,
                    p.email,
                    p.created_at.format("%Y-%m-%d"),
                    p.profile.interests,
                    p.profile.expertise_level
                );
            }
        },
    )?;
    show(
        "profiles interested in rust (first 5)",
        store.find_profiles_by_interest("rust", 5).await,
        |ps| {
            for p in ps {
                println!("   {}", p.username);
            }
        },
    )?;
    let sub = Subscription {
        plan: "pro".into(),
        started_at: Utc::now(),
        status: SubscriptionStatus::Active,
    };
    store.add_subscription("user007", sub).await?;
    store
        .update_metrics(
            "user007",
            MetricsUpdate {
                engagement_score: Some(0.82),
                profile_views: 3,
                content_views: 12,
            },
        )
        .await?;
    show(
        "user007 after a subscription and a metrics update",
        store.profile_by_username("user007").await,
        |p| {
            if let Some(p) = p {
                println!(
                    "   subscriptions {:?}",
                    p.subscriptions.iter().map(|s| &s.plan).collect::<Vec<_>>()
                );
                println!("   metrics {:?}", p.metrics);
            }
        },
    )?;

    let september = TimeWindow::between(
        Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap(),
    );
    show(
        "event distribution, September",
        store.event_distribution(september).await,
        |d| {
            for c in d {
                println!("   {:<12} {:>5}", c.event_type, c.count);
            }
        },
    )?;
    show(
        "most active users, September (top 5)",
        store.user_activity(september, 5).await,
        |a| {
            for u in a {
                println!(
                    "   user {} {:>3} events, {} .. {}",
                    u.user_id,
                    u.events,
                    u.first_seen.format("%m-%d %H:%M"),
                    u.last_seen.format("%m-%d %H:%M")
                );
            }
        },
    )?;
    show(
        "purchases by category, all time",
        store.purchase_analytics(TimeWindow::all()).await,
        |p| {
            for c in p {
                println!(
                    "   {:<10} {:>4} purchases  revenue {:>9.2}  average {:>6.2}",
                    c.category.as_deref().unwrap_or("-"),
                    c.purchases,
                    c.revenue,
                    c.average_price
                );
            }
        },
    )?;
    let berlin = GeoPoint::new(13.405, 52.52);
    show(
        "events within 50 km of Berlin (nearest 5)",
        store.events_near(berlin, 50_000.0, 5).await,
        |n| {
            for e in n {
                let city = e
                    .event
                    .geo
                    .as_ref()
                    .and_then(|g| g.city.clone())
                    .unwrap_or_default();
                println!(
                    "   {:<8} {:>8.0} m  {}",
                    city, e.distance_m, e.event.event_type
                );
            }
        },
    )?;
    show(
        "cohorts by sign-up month, active in September",
        store.cohort_metrics(september).await,
        |c| {
            for m in c {
                println!(
                    "   {}  users {:>3}  active {:>3}  events/user {:>5.2}",
                    m.month, m.users, m.active_users, m.events_per_user
                );
            }
        },
    )?;

    let distribution = store.event_distribution(september).await?;
    let value = mod8_docstore::serde_json::to_value(&distribution).unwrap();
    store
        .save_analytics("event_distribution/2026-09", value)
        .await?;
    show(
        "stored analytics snapshot",
        store.latest_analytics("event_distribution/2026-09").await,
        |s| {
            if let Some(s) = s {
                let n = s.result.as_array().map(Vec::len).unwrap_or(0);
                println!(
                    "   {} computed at {}: {n} event types",
                    s.name,
                    s.computed_at.format("%H:%M:%S")
                );
            }
        },
    )?;

    let filter = EventFilter {
        user_id: Some("1007".into()),
        ..EventFilter::default()
    };
    // The export as a stream of typed batches, oldest first; only one batch is held at a time.
    let mut batches = store.export_events(filter.clone(), 10).await?;
    let (mut sizes, mut first, mut last) = (Vec::new(), None, None);
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        sizes.push(batch.len());
        first = first.or_else(|| batch.first().map(|e| e.timestamp));
        last = batch.last().map(|e| e.timestamp).or(last);
    }
    println!("\n== export of user 1007 in batches of at most 10");
    println!("   batch sizes {sizes:?}");
    if let (Some(first), Some(last)) = (first, last) {
        println!("   from {first} to {last}");
    }

    let mut ndjson = Vec::new();
    let n = mod8_docstore::export_ndjson(&*store, filter, &mut ndjson).await?;
    println!("\n== NDJSON export of user 1007: {n} lines, first:");
    if let Some(line) = String::from_utf8_lossy(&ndjson).lines().next() {
        println!("   {line}");
    }

    store
        .append_log(LogEntry::new("info", "example finished"))
        .await?;
    show("recent logs", store.recent_logs(5).await, |logs| {
        for l in logs {
            println!("   [{}] {}", l.level, l.message);
        }
    })?;

    println!("\n== bad input is refused");
    for (what, err) in [
        (
            "username \"$ne\"",
            store.profile_by_username("$ne").await.err(),
        ),
        (
            "longitude 200",
            store
                .events_near(GeoPoint::new(200.0, 0.0), 10.0, 1)
                .await
                .err(),
        ),
    ] {
        println!(
            "   {what}: {}",
            err.map(|e| e.to_string()).unwrap_or_default()
        );
    }

    if let Some(m) = mongo {
        m.drop_database().await?;
    }
    Ok(())
}
