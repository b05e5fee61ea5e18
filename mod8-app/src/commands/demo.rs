//! `mod8 demo`: the three flows for a handful of users on whatever backends the environment
//! selects (embedded defaults when none), with a readable report. Exits non-zero when any
//! step fails.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as Days, Utc};
use futures::TryStreamExt;
use mod8_datasci::simulate::{simulate_customers, SimulationParams};
use mod8_datasci::{BgNbd, ClvFit, ClvOptions, CustomerSummary, GammaGamma, Rfm, Segment};
use mod8_mq::domain::NotificationChannel;
use mod8_orm::{AnalyticsRepository, NewOrder, OrderLine, OrderStatus, UserUpdate};

use crate::flows::analytics::EventInput;
use crate::flows::personalisation::InsightsReport;
use crate::flows::registration::{AddressInput, Registration};
use crate::{App, AppConfig};

/// The report of one run: each step with its outcome and time.
#[derive(Debug, Default)]
pub struct Report {
    lines: Vec<String>,
    failures: usize,
    insights: Option<InsightsReport>,
    segments: Vec<(String, Segment)>,
}

impl Report {
    fn step(&mut self, name: &str, started: Instant, outcome: Result<String, String>) -> bool {
        let ms = started.elapsed().as_secs_f64() * 1e3;
        match outcome {
            Ok(detail) => {
                self.lines
                    .push(format!("  ok   {name:<44} {ms:>8.1} ms  {detail}"));
                true
            }
            Err(e) => {
                self.failures += 1;
                self.lines
                    .push(format!("  FAIL {name:<44} {ms:>8.1} ms  {e}"));
                false
            }
        }
    }

    fn section(&mut self, title: &str) {
        self.lines.push(String::new());
        self.lines.push(title.to_owned());
    }

    /// Steps that failed.
    pub fn failures(&self) -> usize {
        self.failures
    }

    /// The segment report the run computed over every user, if it got that far.
    pub fn insights(&self) -> Option<&InsightsReport> {
        self.insights.as_ref()
    }

    /// Each of this run's users (username) with the segment their profile placed them in.
    pub fn segments(&self) -> &[(String, Segment)] {
        &self.segments
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// `mod8 demo` on the environment's backends.
///
/// # Errors
///
/// A backend that cannot be reached, or any failed step (after the report is printed).
pub async fn run() -> anyhow::Result<()> {
    let config = AppConfig::from_env()?;
    println!("mod8 demo");
    for line in config.describe() {
        println!("  {line}");
    }
    let app = App::build(config).await?;
    app.start().await?;
    let report = run_on(&app).await;
    app.shutdown().await;
    print!("{report}");
    if report.failures() > 0 {
        anyhow::bail!("{} demo step(s) failed", report.failures());
    }
    println!("\nall steps succeeded");
    Ok(())
}

/// Runs the demo on an app whose background work is started; returns the report.
pub async fn run_on(app: &Arc<App>) -> Report {
    let mut report = Report::default();
    let run = &uuid::Uuid::new_v4().simple().to_string()[..6];

    report.section("setup");
    let t = Instant::now();
    let catalogue = match super::seed::catalogue(app).await {
        Ok(c) => {
            let detail = format!("{} cities, {} products", c.cities.len(), c.products.len());
            report.step("catalogue (countries, cities, products)", t, Ok(detail));
            c
        }
        Err(e) => {
            report.step("catalogue", t, Err(format!("{e:#}")));
            return report;
        }
    };

    report.section("1. registration (SQL transaction + outbox → broker → profile document)");
    let people = [
        ("ada", "Berlin", "DE"),
        ("grace", "Paris", "FR"),
        ("linus", "Tokyo", "JP"),
        ("margaret", "Toronto", "CA"),
        ("barbara", "Madrid", "ES"),
    ];
    let mut users = Vec::new();
    for (name, city, country) in people {
        let username = format!("{name}_{run}");
        let t = Instant::now();
        let registration = Registration {
            username: username.clone(),
            email: format!("{username}@example.com"),
            address: Some(AddressInput {
                street: "1 Demo Street".into(),
                postal_code: "10115".into(),
                city: city.into(),
                country_code: country.into(),
            }),
        };
        match app.register(registration).await {
            Ok(r) => {
                let detail = format!(
                    "id {} in {city}; {} initial recommendations",
                    r.user.id,
                    r.recommendations.recommendations.len()
                );
                report.step(&format!("register {username}"), t, Ok(detail));
                users.push(r.user);
            }
            Err(e) => {
                report.step(&format!("register {username}"), t, Err(e.to_string()));
            }
        }
    }
    if users.is_empty() {
        report.step(
            "registrations",
            Instant::now(),
            Err("no user could be registered".into()),
        );
        return report;
    }
    if let Some(first) = users.first() {
        let t = Instant::now();
        let dup = Registration {
            username: first.username.clone(),
            email: format!("other_{run}@example.com"),
            address: None,
        };
        let outcome = match app.register(dup).await {
            Err(crate::AppError::Conflict { field }) => Ok(format!("refused: conflict on {field}")),
            Ok(_) => Err("a duplicate username was accepted".into()),
            Err(e) => Err(format!("unexpected error: {e}")),
        };
        report.step("duplicate username is refused (409)", t, outcome);
    }

    let t = Instant::now();
    let stored = wait_for(Duration::from_secs(20), || async {
        let mut n = 0;
        for u in &users {
            if matches!(app.docs.profile_by_username(&u.username).await, Ok(Some(_))) {
                n += 1;
            }
        }
        (n == users.len()).then_some(n)
    })
    .await;
    report.step(
        "outbox relay → UserDataConsumer → profile docs",
        t,
        stored
            .map(|n| {
                format!(
                    "{n} profiles stored; outbox backlog {}",
                    app.outbox.backlog()
                )
            })
            .ok_or_else(|| "profiles did not arrive within 20 s".to_owned()),
    );
    let t = Instant::now();
    let welcomed = wait_for(Duration::from_secs(20), || async {
        let n = app.notifier.sent(NotificationChannel::Email);
        (n >= users.len() as u64).then_some(n)
    })
    .await;
    report.step(
        "welcome notifications sent",
        t,
        welcomed
            .map(|n| format!("{n} emails through the notification consumer"))
            .ok_or_else(|| "welcome notifications did not arrive within 20 s".to_owned()),
    );

    report.section("purchase histories (back-dated orders through the library; each invalidates what depends on its user)");
    let mut by_category: HashMap<&str, Vec<&mod8_orm::Product>> = HashMap::new();
    for p in &catalogue.products {
        by_category.entry(p.category.as_str()).or_default().push(p);
    }
    // The dormant user was last seen months ago: the registration just now is not theirs.
    let now = Utc::now();
    for user in users.iter().filter(|u| u.username.starts_with(DORMANT)) {
        let t = Instant::now();
        let update = UserUpdate {
            last_active_at: Some(now - Days::days(DORMANT_LAST_SEEN_DAYS)),
            ..Default::default()
        };
        let outcome = app
            .sql
            .update_user(user.id, update)
            .await
            .map(|_| format!("last active {DORMANT_LAST_SEEN_DAYS} days ago"))
            .map_err(|e| e.to_string());
        report.step(&format!("back-date {}", user.username), t, outcome);
    }
    for user in &users {
        let Some(history) = HISTORIES.iter().find(|h| user.username.starts_with(h.name)) else {
            continue;
        };
        let t = Instant::now();
        let mut placed = 0;
        let mut spend = 0;
        let mut error = None;
        for (days_ago, basket) in history.orders {
            let lines: Vec<OrderLine> = basket
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    by_category
                        .get(c)
                        .and_then(|ps| ps.get(i % ps.len()))
                        .map(|p| OrderLine {
                            product_id: p.id,
                            quantity: 1,
                        })
                })
                .collect();
            let order = NewOrder {
                user_id: user.id,
                lines,
                created_at: (*days_ago > 0).then(|| now - Days::days(*days_ago)),
            };
            // Paid, as the customer-value models count only paid and shipped orders.
            let outcome = match app.place_order(order).await {
                Ok(o) => app
                    .sql
                    .set_order_status(o.order.id, OrderStatus::Paid)
                    .await
                    .map(|_| o.order.total_cents)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(total) => {
                    placed += 1;
                    spend += total;
                }
                Err(e) => error = Some(e),
            }
        }
        let days: Vec<String> = history.orders.iter().map(|(d, _)| d.to_string()).collect();
        let outcome = match error {
            None => Ok(format!(
                "{placed} orders, {} days ago, total {:.2} ({})",
                days.join("/"),
                spend as f64 / 100.0,
                history.story
            )),
            Some(e) => Err(e),
        };
        report.step(&format!("history of {}", user.username), t, outcome);
    }
    app.invalidate_model().await;

    report.section(
        "catalog (category listing, product page cold/warm through the cache, price update in a unit of work, checkout, payment, verified review)",
    );
    if let Some(buyer) = users.iter().find(|u| u.username.starts_with("ada")) {
        catalog_step(app, &mut report, buyer).await;
    }

    report.section(
        "2. real-time analytics (confirmed publish to the analytics fanout → counters once per message id → event log, profile + live dashboard)",
    );
    let t = Instant::now();
    let mut accepted = 0;
    let mut error = None;
    // Not the dormant user: an event now would make them active again.
    for (i, user) in users
        .iter()
        .filter(|u| !u.username.starts_with(DORMANT))
        .enumerate()
    {
        for event_type in [
            "session",
            "page_view",
            "page_view",
            "click",
            "search",
            "cart_add",
        ]
        .iter()
        .take(3 + i)
        {
            let event = EventInput {
                user_id: user.id,
                event_type: (*event_type).to_owned(),
                properties: HashMap::from([("page".to_owned(), serde_json::json!("/catalogue"))]),
            };
            match app.record_event(event).await {
                Ok(_) => accepted += 1,
                Err(e) => error = Some(e.to_string()),
            }
        }
    }
    report.step(
        "record events",
        t,
        match error {
            None => Ok(format!("{accepted} events accepted")),
            Some(e) => Err(e),
        },
    );
    let t = Instant::now();
    let stored_events = wait_for(Duration::from_secs(20), || async {
        let live = app.live.snapshot().total_events;
        // This run's users only: on a reused database the log holds earlier runs' events too.
        let logged = logged_events(app, &users).await;
        (live >= accepted && logged == accepted).then_some((live, logged))
    })
    .await;
    report.step(
        "events in the event log and on the live dashboard",
        t,
        stored_events
            .map(|(live, logged)| format!("{logged} logged, {live} on the dashboard"))
            .ok_or_else(|| "events did not arrive within 20 s".to_owned()),
    );
    let snapshot = app.live.snapshot();
    let top: Vec<String> = snapshot
        .events_by_type
        .iter()
        .take(4)
        .map(|(t, n)| format!("{t}={n}"))
        .collect();
    report
        .lines
        .push(format!("       live dashboard: {}", top.join(", ")));

    report.section("3. personalisation (cold: SQL + documents → engines → cache; warm: cache)");
    for user in &users {
        let t = Instant::now();
        let cold = app.recommendations(user.id).await;
        let cold_ms = t.elapsed().as_secs_f64() * 1e3;
        let outcome = match cold {
            Ok(r) if !r.cached => {
                let t2 = Instant::now();
                match app.recommendations(user.id).await {
                    Ok(warm) if warm.cached && warm.recommendations == r.recommendations => {
                        let picks: Vec<String> = r
                            .recommendations
                            .iter()
                            .take(3)
                            .filter_map(|rec| {
                                catalogue
                                    .products
                                    .iter()
                                    .find(|p| p.id.to_string() == rec.product_id)
                                    .map(|p| format!("{} ({:.2})", p.name, rec.score))
                            })
                            .collect();
                        Ok(format!(
                            "{:?}; cold {cold_ms:.1} ms, warm {:.2} ms (cached); top: {}",
                            r.segment,
                            t2.elapsed().as_secs_f64() * 1e3,
                            picks.join(", ")
                        ))
                    }
                    Ok(warm) if warm.cached => Err(format!(
                        "the cached answer differs from the computed one: {:?} then {:?}",
                        r.recommendations, warm.recommendations
                    )),
                    Ok(_) => Err("the second request was not served from the cache".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Ok(_) => Err("the first request after an order was served from the cache".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        report.step(
            &format!("recommendations for {}", user.username),
            t,
            outcome,
        );
    }
    if let Some(user) = users.first() {
        let t = Instant::now();
        let outcome = app
            .profile(user.id)
            .await
            .map(|p| {
                format!(
                    "{:?}, engagement {:.0}, churn risk {:.2}, LTV {:.2}",
                    p.profile.segment,
                    p.profile.engagement,
                    p.profile.churn_risk,
                    p.profile.lifetime_value
                )
            })
            .map_err(|e| e.to_string());
        report.step(&format!("profile of {}", user.username), t, outcome);
    }
    report.section("4. segments over every user (the worker's batch, run now) and customer value");
    let mut profiles = Vec::new();
    for user in &users {
        match app.profile(user.id).await {
            Ok(p) => {
                report
                    .segments
                    .push((user.username.clone(), p.profile.segment));
                profiles.push((user, p.profile));
            }
            Err(e) => {
                report.step(
                    &format!("profile of {}", user.username),
                    Instant::now(),
                    Err(e.to_string()),
                );
            }
        }
    }
    let t = Instant::now();
    match app.refresh_insights().await {
        Ok(r) => {
            report.step(
                "insights report over every user",
                t,
                Ok(format!(
                    "{} users in {} segments, computed at {}",
                    r.report.total_users,
                    r.report.non_empty_segments(),
                    r.computed_at.format("%H:%M:%S UTC")
                )),
            );
            for line in r.report.to_text().lines().take(12) {
                report.lines.push(format!("       {line}"));
            }
            report.insights = Some(r);
        }
        Err(e) => {
            report.step("insights report over every user", t, Err(e.to_string()));
        }
    }
    let t = Instant::now();
    match customer_value(app, &users).await {
        Ok(value) => {
            report.step("BG/NBD + Gamma-Gamma fit", t, Ok(value.fitted_on.clone()));
            report.lines.push(format!(
                "       {:<18} {:<8} {:>16} {:>14} {:>10} {:>12}",
                "user", "segment", "heuristic churn", "heuristic LTV", "P(alive)", "CLV 12 mo"
            ));
            for (user, profile) in &profiles {
                let (p_alive, clv) = value
                    .predictions
                    .get(&user.id)
                    .map_or(("-".to_owned(), "-".to_owned()), |(a, c)| {
                        (format!("{a:.3}"), format!("{c:.2}"))
                    });
                report.lines.push(format!(
                    "       {:<18} {:<8} {:>16.3} {:>14.2} {:>10} {:>12}",
                    user.username,
                    profile.segment.to_string(),
                    profile.churn_risk,
                    profile.lifetime_value,
                    p_alive,
                    clv
                ));
            }
        }
        Err(e) => {
            report.step("BG/NBD + Gamma-Gamma fit", t, Err(format!("{e:#}")));
        }
    }

    report.section("metrics");
    let stats = app.cache.stats();
    let snapshot = app.metrics_snapshot().await;
    let mut line = String::new();
    let _ = write!(
        line,
        "  cache hits {} misses {} (hit ratio {:.2}); dead letters {}; outbox backlog {}",
        stats.hits,
        stats.misses,
        stats.hit_ratio(),
        snapshot
            .dead_letters
            .map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
        snapshot
            .outbox_backlog
            .map_or_else(|| "unknown".to_owned(), |n| n.to_string())
    );
    report.lines.push(line);
    for c in app.consumer_stats().await {
        report.lines.push(format!(
            "  consumer {:<15} acked {:>4}  retried {:>3}  dead-lettered {:>3}",
            c.name, c.acked, c.retried, c.dead_lettered
        ));
    }
    report
}

/// Cache key of a product page (the catalog's cache contract: `product:{id}`).
fn product_key(id: uuid::Uuid) -> String {
    format!("product:{id}")
}

/// Cache tag of every category listing page (invalidated on any product change).
const CATEGORY_LISTING_TAG: &str = "category-listing";

/// The category the demo browses: the reference catalog's first root.
const DEMO_CATEGORY: &str = crate::reference::CATALOG_MARKER;

/// The first listing page of `category` (cheapest first), through the cache under its tag.
async fn listing_page(
    app: &App,
    category: uuid::Uuid,
) -> Result<(mod8_orm::CursorPage<mod8_orm::ProductSummary>, bool), String> {
    let key = format!("category:{category}:price_asc:first");
    let cached = matches!(
        app.cache
            .get::<mod8_orm::CursorPage<mod8_orm::ProductSummary>>(&key)
            .await,
        Ok(Some(_))
    );
    let options =
        mod8_cache::EntryOptions::ttl(Duration::from_secs(60)).with_tag(CATEGORY_LISTING_TAG);
    let page = app
        .cache
        .get_or_load(&key, &options, || async {
            app.sql
                .list_category_products(
                    category,
                    mod8_orm::ListingQuery {
                        sort: mod8_orm::ListingSort::PriceAsc,
                        limit: 5,
                        ..Default::default()
                    },
                )
                .await
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok((page, cached))
}

/// A product page through the cache (`product:{id}`); whether it came from the cache.
async fn product_page(app: &App, id: uuid::Uuid) -> Result<(mod8_orm::ProductPage, bool), String> {
    let key = product_key(id);
    let cached = matches!(
        app.cache.get::<mod8_orm::ProductPage>(&key).await,
        Ok(Some(_))
    );
    let options = mod8_cache::EntryOptions::ttl(Duration::from_secs(60));
    let page = app
        .cache
        .get_or_load(&key, &options, || async { app.sql.product_page(id).await })
        .await
        .map_err(|e| e.to_string())?;
    Ok((page, cached))
}

/// The catalog through the library: browse, view cold and warm, reprice (and invalidate),
/// check out as `buyer`, pay, and review as a verified buyer.
async fn catalog_step(app: &App, report: &mut Report, buyer: &mod8_orm::User) {
    let t = Instant::now();
    let category = match app.sql.categories().await {
        Ok(all) => all.into_iter().find(|c| c.slug == DEMO_CATEGORY),
        Err(e) => {
            report.step("categories", t, Err(e.to_string()));
            return;
        }
    };
    let Some(category) = category else {
        report.step(
            "categories",
            t,
            Err(format!("no {DEMO_CATEGORY:?} category")),
        );
        return;
    };
    let first = match listing_page(app, category.id).await {
        Ok((page, _)) => match page.items.first().cloned() {
            Some(first) => {
                let names: Vec<String> = page
                    .items
                    .iter()
                    .map(|p| format!("{} {:.2}", p.name, p.price_cents as f64 / 100.0))
                    .collect();
                report.step(
                    &format!("browse {} (first page)", category.name),
                    t,
                    Ok(names.join(", ")),
                );
                first
            }
            None => {
                report.step("browse", t, Err(format!("{} is empty", category.name)));
                return;
            }
        },
        Err(e) => {
            report.step("browse", t, Err(e));
            return;
        }
    };
    let mut page = None;
    for attempt in ["cold", "warm"] {
        let t = Instant::now();
        let outcome = match product_page(app, first.id).await {
            Ok((p, cached)) if cached == (attempt == "warm") => {
                let detail = format!(
                    "{} v{}: {} variants, {} available, {}",
                    p.product.name,
                    p.product.version,
                    p.variants.len(),
                    p.variants.iter().map(|v| v.available()).sum::<i64>(),
                    if cached {
                        "from the cache"
                    } else {
                        "from SQL (cached now)"
                    }
                );
                page = Some(p);
                Ok(detail)
            }
            Ok((_, cached)) => Err(format!("the {attempt} view was cached={cached}")),
            Err(e) => Err(e),
        };
        report.step(&format!("view product ({attempt})"), t, outcome);
    }
    let Some(page) = page else { return };
    let Some(variant) = page.variants.first().map(|v| v.variant.clone()) else {
        return;
    };

    // Reprice the default variant in a unit of work, then drop what the cache derived from
    // it: the product page and every listing page.
    let t = Instant::now();
    let new_price = variant.price_cents + 100;
    let changes = mod8_orm::ProductChanges {
        prices: std::collections::BTreeMap::from([(variant.id, new_price)]),
        ..Default::default()
    };
    let updated = async {
        let uow = app.sql.begin().await?;
        let product = uow
            .update_product(page.product.id, page.product.version, changes)
            .await?;
        uow.commit().await?;
        Ok::<_, mod8_orm::Error>(product)
    }
    .await;
    let outcome = match updated {
        Ok(product) => {
            let dropped = app
                .cache
                .delete(&product_key(product.id))
                .await
                .unwrap_or(false);
            let listings = app
                .cache
                .invalidate_tag(CATEGORY_LISTING_TAG)
                .await
                .unwrap_or(0);
            Ok(format!(
                "{:.2} → {:.2}, version {} → {}; cache: product page dropped={dropped}, {listings} listing page(s) dropped",
                variant.price_cents as f64 / 100.0,
                new_price as f64 / 100.0,
                page.product.version,
                product.version
            ))
        }
        Err(e) => Err(e.to_string()),
    };
    report.step("update the price (unit of work)", t, outcome);
    let t = Instant::now();
    let outcome = match (
        listing_page(app, category.id).await,
        product_page(app, first.id).await,
    ) {
        (Ok((listing, false)), Ok((p, false))) => {
            let listed = listing
                .items
                .iter()
                .find(|s| s.id == first.id)
                .map(|s| s.price_cents);
            let shown = p.variants.first().map(|v| v.variant.price_cents);
            if shown == Some(new_price) && listed.is_some_and(|c| c <= new_price) {
                Ok(format!(
                    "listing and page read again from SQL: {} at {:.2}",
                    p.product.name,
                    new_price as f64 / 100.0
                ))
            } else {
                Err(format!(
                    "stale after the update: page {shown:?}, listing {listed:?}"
                ))
            }
        }
        (Ok((_, true)), _) | (_, Ok((_, true))) => {
            Err("a cached entry survived the price update".to_owned())
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    report.step("listing refreshed with the new price", t, outcome);

    // Buy it from the cart, pay, and review it as a verified buyer.
    let t = Instant::now();
    let order = async {
        app.sql.add_to_cart(buyer.id, variant.id, 1).await?;
        let order = app
            .sql
            .checkout(mod8_orm::Checkout {
                user_id: buyer.id,
                lines: None,
                shipping_address_id: buyer.address_id,
                billing_address_id: buyer.address_id,
            })
            .await?;
        app.sql
            .set_order_status(order.order.id, OrderStatus::Paid)
            .await?;
        Ok::<_, mod8_orm::Error>(order)
    }
    .await;
    // What the cache derived from the buyer and the catalog's sales is stale now.
    let _ = app
        .cache
        .invalidate_tag(&crate::keys::user_tag(buyer.id))
        .await;
    let _ = app.cache.delete(&product_key(first.id)).await;
    app.invalidate_model().await;
    let outcome = order
        .map(|o| {
            format!(
                "order {} of {} line(s), {:.2}, paid",
                o.order.id,
                o.items.len(),
                o.order.total_cents as f64 / 100.0
            )
        })
        .map_err(|e| e.to_string());
    let paid = outcome.is_ok();
    report.step(
        &format!("check out the cart of {} and pay", buyer.username),
        t,
        outcome,
    );
    if !paid {
        return;
    }
    let t = Instant::now();
    let review = app
        .sql
        .create_review(mod8_orm::NewReview {
            product_id: first.id,
            user_id: buyer.id,
            rating: 5,
            title: "Does what it says".to_owned(),
            body: "Bought it in the demo.".to_owned(),
        })
        .await;
    let outcome = match review {
        Ok(r) if r.verified_purchase => app
            .sql
            .product_rating(first.id)
            .await
            .map(|rating| {
                format!(
                    "{} stars, verified purchase; {} review(s), average {:.2}",
                    r.rating,
                    rating.review_count,
                    rating.average.unwrap_or_default()
                )
            })
            .map_err(|e| e.to_string()),
        Ok(_) => Err("the buyer's review was not marked as a verified purchase".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    report.step("review as a verified buyer", t, outcome);
}

/// Username prefix of the demo's dormant user.
const DORMANT: &str = "margaret";
/// How long ago the dormant user was last active.
const DORMANT_LAST_SEEN_DAYS: i64 = 130;

/// A demo user's purchase history: orders as (days ago, categories of the lines), oldest
/// first; 0 days ago is placed now.
struct History {
    name: &'static str,
    story: &'static str,
    orders: &'static [(i64, &'static [&'static str])],
}

/// Histories that place the five demo users in every segment (with the default thresholds:
/// dormant after 90 days without activity, at risk from churn 0.6 — about 38 days since the
/// last purchase — VIP from a spend of 1,000).
const HISTORIES: &[History] = &[
    History {
        name: "ada",
        story: "regular small orders: active",
        orders: &[
            (62, &["books"]),
            (31, &["books", "courses"]),
            (0, &["books"]),
        ],
    },
    History {
        name: "grace",
        story: "monitors and headphones, recently: VIP by spend",
        orders: &[
            (95, &["hardware", "hardware"]),
            (41, &["hardware", "hardware"]),
            (12, &["hardware", "hardware"]),
            (0, &["hardware", "courses"]),
        ],
    },
    History {
        name: "linus",
        story: "gaps of 10, 20, 35, 50 days and none since: at risk",
        orders: &[
            (170, &["courses"]),
            (160, &["books"]),
            (140, &["courses"]),
            (105, &["books"]),
            (55, &["merch"]),
        ],
    },
    History {
        name: DORMANT,
        story: "nothing for months: dormant",
        orders: &[(240, &["books"]), (200, &["merch"]), (150, &["books"])],
    },
    History {
        name: "barbara",
        story: "a first order weeks ago and one now: active",
        orders: &[(21, &["courses", "hardware"]), (0, &["merch"])],
    },
];

/// Simulated customers the customer-value model is fitted on besides the demo's five: five
/// histories cannot identify four BG/NBD parameters.
const BACKGROUND_CUSTOMERS: usize = 2_000;

/// The fitted model's P(alive) and CLV per demo user, and what it was fitted on.
struct CustomerValue {
    fitted_on: String,
    predictions: HashMap<uuid::Uuid, (f64, f64)>,
}

/// Fits BG/NBD + Gamma-Gamma on the demo users' purchase summaries (from the database's
/// aggregate, paid orders up to today) plus [`BACKGROUND_CUSTOMERS`] customers simulated from
/// CDNOW-like parameters (seeded, the same every run), and predicts the demo users.
async fn customer_value(app: &App, users: &[mod8_orm::User]) -> anyhow::Result<CustomerValue> {
    let today = Utc::now().date_naive();
    let wanted: HashMap<uuid::Uuid, &str> =
        users.iter().map(|u| (u.id, u.username.as_str())).collect();
    let mut demo = Vec::new();
    let mut summaries = app.sql.customer_rfm(today);
    while let Some(c) = summaries.try_next().await? {
        if wanted.contains_key(&c.user_id) {
            let rfm = Rfm::new(c.frequency, c.recency, c.t, c.monetary_value_cents / 100.0)?;
            demo.push(CustomerSummary {
                customer_id: c.user_id.to_string(),
                first_purchase: Some(c.first_purchase),
                rfm,
            });
        }
    }
    drop(summaries);
    let mut points = simulate_customers(&SimulationParams {
        bgnbd: BgNbd::new(0.243, 4.414, 0.793, 2.426)?,
        gamma_gamma: GammaGamma::new(6.25, 3.74, 15.44)?,
        customers: BACKGROUND_CUSTOMERS,
        min_age_weeks: 4.0,
        max_age_weeks: 52.0,
        seed: 8,
    })?;
    points.extend(demo.iter().map(|c| c.rfm));
    let fit = ClvFit::fit_points(&points)?;
    let model = fit.model()?;
    let options = ClvOptions::default();
    let mut predictions = HashMap::new();
    for c in &demo {
        let p = model.predict(c, options.horizon_weeks(), &options)?;
        if let Ok(id) = c.customer_id.parse() {
            predictions.insert(id, (p.p_alive, p.clv));
        }
    }
    let b = fit.bgnbd.params;
    Ok(CustomerValue {
        fitted_on: format!(
            "fitted on {} customers: the {} demo histories (paid orders) + {BACKGROUND_CUSTOMERS} simulated background customers; r={:.3} alpha={:.3} a={:.3} b={:.3}",
            points.len(),
            demo.len(),
            b.r,
            b.alpha,
            b.a,
            b.b
        ),
        predictions,
    })
}

/// Events in the document store's log by `users`.
async fn logged_events(app: &App, users: &[mod8_orm::User]) -> u64 {
    use futures::TryStreamExt;
    let mut total = 0;
    for user in users {
        let filter = mod8_docstore::EventFilter {
            user_id: Some(user.id.to_string()),
            ..Default::default()
        };
        let Ok(batches) = app.docs.export_events(filter, 500).await else {
            return 0;
        };
        let batches: Vec<Vec<_>> = batches.try_collect().await.unwrap_or_default();
        total += batches.iter().map(Vec::len).sum::<usize>() as u64;
    }
    total
}

/// Polls `check` every 50 ms until it returns `Some`, or `timeout` passes.
async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second run on the same stores (a reused database) must check its own work: its event
    /// count is this run's users' events, not everything in the log. Each run's five users
    /// land in every segment, and the report over every user counts them all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_succeeds_twice_on_the_same_stores() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        app.start().await.unwrap();
        for run in 1..=2 {
            let report = run_on(&app).await;
            assert_eq!(report.failures(), 0, "run {run}:\n{report}");
            let text = report.to_string();
            assert!(text.contains("events in the event log"), "{report}");
            // This run's users: one in each segment, two active.
            let mut segments: Vec<Segment> = report.segments().iter().map(|(_, s)| *s).collect();
            segments.sort();
            assert_eq!(
                segments,
                [
                    Segment::Dormant,
                    Segment::Active,
                    Segment::Active,
                    Segment::Vip,
                    Segment::AtRisk
                ],
                "run {run}: {:?}\n{report}",
                report.segments()
            );
            // The report over every user: both runs' users so far, every segment non-empty.
            let insights = &report.insights().expect("an insights report").report;
            let users = 5 * run;
            assert_eq!(insights.total_users, users, "{report}");
            assert_eq!(insights.non_empty_segments(), 4, "{report}");
            assert!(insights.segments.iter().all(|s| s.users == run || (s.segment == Segment::Active && s.users == 2 * run)), "{report}");
            assert!(
                text.contains(&format!("{users} users in 4 segments")),
                "{report}"
            );
            // The fitted model's figures beside the heuristic ones, for every user.
            assert!(text.contains("BG/NBD + Gamma-Gamma fit"), "{report}");
            assert!(
                text.contains("2000 simulated background customers"),
                "{report}"
            );
            for (name, _) in report.segments() {
                let row = text
                    .lines()
                    .find(|l| l.trim_start().starts_with(name.as_str()) && l.contains('.'))
                    .unwrap_or_else(|| panic!("no value row for {name}:\n{report}"));
                assert!(!row.contains(" - "), "{row}");
            }
        }
        app.shutdown().await;
    }
}
