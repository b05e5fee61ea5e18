//! The three mod8 flows driven through the library API (not HTTP): registration with the
//! outbox, real-time analytics, personalisation — each step printed as it happens.
//!
//! ```sh
//! cargo run -p mod8-examples --example full_flow              # embedded defaults
//! eval "$(scripts/services.sh env)" && cargo run -p mod8-examples --example full_flow
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mod8_app::commands::seed::Catalogue;
use mod8_app::flows::analytics::EventInput;
use mod8_app::flows::personalisation::Recommendations;
use mod8_app::flows::registration::{AddressInput, Registration};
use mod8_app::{App, AppConfig};
use mod8_orm::{NewOrder, OrderLine};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = AppConfig::from_env()?;
    println!("mod8 full flow, through the library API");
    for line in config.describe() {
        println!("  {line}");
    }
    let app = App::build(config).await?;
    app.start().await?; // consumers and the outbox relay
    let outcome = run(&app).await;
    // Consumers finish their in-flight messages and the relay makes a last pass, even when a
    // step failed.
    app.shutdown().await;
    outcome
}

async fn run(app: &Arc<App>) -> anyhow::Result<()> {
    let catalogue = mod8_app::commands::seed::catalogue(app).await?;
    println!(
        "\ncatalogue: {} products, {} cities (created if missing)",
        catalogue.products.len(),
        catalogue.cities.len()
    );
    // Names unique per run, so a run on a reused database does not meet the last one's users.
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 1_000_000);
    let books: Vec<_> = catalogue
        .products
        .iter()
        .filter(|p| p.category == "books")
        .collect();
    anyhow::ensure!(books.len() >= 2, "the catalogue has fewer than two books");

    println!("\n1. registration: user + address + outbox row in one SQL transaction");
    // A first customer buys two books together, so there is something to recommend.
    let grace = app
        .register(registration(&format!("grace_{run}"), "Paris", "FR"))
        .await?;
    app.place_order(order(grace.user.id, &[books[0].id, books[1].id]))
        .await?;
    app.invalidate_model().await; // new orders: rebuild the co-purchase model
    let registered_at = Instant::now();
    let ada = app
        .register(registration(&format!("ada_{run}"), "Berlin", "DE"))
        .await?;
    println!(
        "  registered {} (id {}) in {:.1} ms",
        ada.user.username,
        ada.user.id,
        ms(registered_at)
    );
    print_recommendations(
        "  initial recommendations",
        &ada.recommendations,
        &catalogue,
    );

    let username = ada.user.username.clone();
    wait_until("the profile document", || async {
        matches!(app.docs.profile_by_username(&username).await, Ok(Some(_)))
    })
    .await?;
    println!(
        "  profile document stored {:.1} ms after the registration began (outbox relay → broker → UserDataConsumer)",
        ms(registered_at)
    );

    println!("\n2. real-time analytics: counters in the cache → analytics fanout → event log");
    let events = ["session", "page_view", "page_view", "search", "click"];
    for event_type in events {
        let accepted = app
            .record_event(EventInput {
                user_id: ada.user.id,
                event_type: event_type.to_owned(),
                properties: HashMap::from([("page".to_owned(), "/books".into())]),
            })
            .await?;
        let c = accepted.counters;
        println!(
            "  {event_type:<10} accepted; counters: {} sessions, {} page views, {} searches, {} clicks",
            c.sessions, c.page_views, c.searches, c.clicks
        );
    }
    wait_until("the live dashboard", || async {
        app.live.snapshot().total_events >= events.len() as u64
    })
    .await?;
    let dashboard = app.live.snapshot();
    let by_type: Vec<String> = dashboard
        .events_by_type
        .iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect();
    println!("  live dashboard: {}", by_type.join(", "));

    println!("\n3. personalisation: cache hit, or SQL + documents → engines → cache");
    // Ada buys the first book: her cached answers are dropped, the next request recomputes.
    app.place_order(order(ada.user.id, &[books[0].id])).await?;
    app.invalidate_model().await;
    for attempt in ["cold (after her order)", "warm"] {
        let started = Instant::now();
        let recs = app.recommendations(ada.user.id).await?;
        print_recommendations(
            &format!("  {attempt}: {:.2} ms", ms(started)),
            &recs,
            &catalogue,
        );
    }
    let profile = app.profile(ada.user.id).await?;
    println!(
        "  profile: {:?}, engagement {:.0}, churn risk {:.2}, lifetime value {:.2}",
        profile.profile.segment,
        profile.profile.engagement,
        profile.profile.churn_risk,
        profile.profile.lifetime_value
    );
    let stats = app.cache.stats();
    println!(
        "\ncache: {} hits, {} misses (hit ratio {:.2})",
        stats.hits,
        stats.misses,
        stats.hit_ratio()
    );
    Ok(())
}

fn registration(username: &str, city: &str, country_code: &str) -> Registration {
    Registration {
        username: username.to_owned(),
        email: format!("{username}@example.com"),
        address: Some(AddressInput {
            street: "1 Example Street".into(),
            postal_code: "10115".into(),
            city: city.into(),
            country_code: country_code.into(),
        }),
    }
}

fn order(user_id: mod8_orm::uuid::Uuid, products: &[mod8_orm::uuid::Uuid]) -> NewOrder {
    NewOrder {
        user_id,
        lines: products
            .iter()
            .map(|p| OrderLine {
                product_id: *p,
                quantity: 1,
            })
            .collect(),
        created_at: None,
    }
}

fn print_recommendations(title: &str, recs: &Recommendations, catalogue: &Catalogue) {
    println!(
        "{title} — segment {:?}, {} picks, {}",
        recs.segment,
        recs.recommendations.len(),
        if recs.cached {
            "from the cache"
        } else {
            "computed"
        }
    );
    for rec in recs.recommendations.iter().take(3) {
        let name = catalogue
            .products
            .iter()
            .find(|p| p.id.to_string() == rec.product_id)
            .map_or(rec.product_id.as_str(), |p| p.name.as_str());
        println!("      {name:<40} score {:.2} ({:?})", rec.score, rec.reason);
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Polls `check` every 50 ms for up to 20 s.
async fn wait_until<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} did not arrive within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
