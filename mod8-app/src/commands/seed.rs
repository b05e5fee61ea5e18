//! `mod8 seed --users N`: a realistic data set — countries, cities, addresses, products,
//! users, orders and events — written in batches, with progress bars.
//!
//! The catalogue part ([`catalogue`]) is idempotent and shared by the demo and the benchmark.

use std::sync::Arc;

use chrono::{Duration as Days, Utc};
use futures::{stream, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use mod8_docstore::{Event, EventMetadata};
use mod8_orm::{
    Address, City, NewAddress, NewCity, NewCountry, NewOrder, NewProduct, NewUser, OrderLine,
    PageRequest, Product,
};
use rand::prelude::*;

use crate::{App, AppConfig};

/// A country of the seed data: name, ISO code, population, GDP per capita in dollars, and its
/// cities as (name, region).
pub type SeedCountry = (
    &'static str,
    &'static str,
    i64,
    i64,
    &'static [(&'static str, &'static str)],
);

/// The seed countries and cities.
pub const COUNTRIES: &[SeedCountry] = &[
    (
        "Germany",
        "DE",
        83_200_000,
        52_700,
        &[
            ("Berlin", "Berlin"),
            ("Munich", "Bavaria"),
            ("Hamburg", "Hamburg"),
        ],
    ),
    (
        "France",
        "FR",
        68_000_000,
        44_400,
        &[("Paris", "Île-de-France"), ("Lyon", "Auvergne-Rhône-Alpes")],
    ),
    (
        "Spain",
        "ES",
        48_300_000,
        32_700,
        &[("Madrid", "Madrid"), ("Barcelona", "Catalonia")],
    ),
    (
        "Japan",
        "JP",
        124_500_000,
        33_800,
        &[("Tokyo", "Kantō"), ("Osaka", "Kansai")],
    ),
    (
        "Brazil",
        "BR",
        203_100_000,
        10_000,
        &[
            ("São Paulo", "São Paulo"),
            ("Rio de Janeiro", "Rio de Janeiro"),
        ],
    ),
    (
        "Canada",
        "CA",
        40_100_000,
        53_400,
        &[("Toronto", "Ontario"), ("Vancouver", "British Columbia")],
    ),
];

/// Product categories with (name, price in cents) per product.
pub const PRODUCTS: &[(&str, &[(&str, i64)])] = &[
    (
        "books",
        &[
            ("Rust in Action", 4_499),
            ("Designing Data-Intensive Applications", 3_999),
            ("The Pragmatic Programmer", 3_499),
            ("Database Internals", 4_299),
            ("Zero To Production", 3_900),
        ],
    ),
    (
        "courses",
        &[
            ("Async Rust Deep Dive", 19_900),
            ("PostgreSQL Performance", 14_900),
            ("MongoDB Aggregations", 9_900),
            ("RabbitMQ Patterns", 12_900),
        ],
    ),
    (
        "hardware",
        &[
            ("Mechanical Keyboard", 12_900),
            ("4K Monitor", 39_900),
            ("Noise-Cancelling Headphones", 29_900),
            ("USB-C Dock", 15_900),
            ("Ergonomic Mouse", 7_900),
        ],
    ),
    (
        "subscriptions",
        &[
            ("Pro Plan (monthly)", 1_900),
            ("Team Plan (monthly)", 4_900),
            ("Enterprise Plan (monthly)", 19_900),
        ],
    ),
    (
        "merch",
        &[
            ("mod8 T-shirt", 2_500),
            ("mod8 Mug", 1_500),
            ("Sticker Pack", 500),
            ("Hoodie", 5_900),
        ],
    ),
];

/// Event types with their relative frequency.
const EVENT_TYPES: &[(&str, u32)] = &[
    ("page_view", 50),
    ("click", 20),
    ("session", 10),
    ("search", 10),
    ("cart_add", 6),
    ("review", 2),
    ("purchase", 2),
];

/// What [`catalogue`] made or found.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// Cities with their country's ISO code.
    pub cities: Vec<(City, String)>,
    /// Every product.
    pub products: Vec<Product>,
}

/// Creates the countries, cities and products if missing (safe to run again), and returns
/// them.
///
/// # Errors
///
/// The SQL store failing.
pub async fn catalogue(app: &App) -> anyhow::Result<Catalogue> {
    let sql = &app.sql;
    let mut cities = Vec::new();
    for (name, code, population, gdp, city_list) in COUNTRIES {
        match sql
            .create_country(NewCountry {
                name: (*name).to_owned(),
                iso_code: (*code).to_owned(),
                population: *population,
                gdp_per_capita_cents: gdp * 100,
            })
            .await
        {
            Ok(_) | Err(mod8_orm::Error::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        for (city, region) in *city_list {
            let found = match sql.find_city(city, code).await? {
                Some(c) => c,
                None => {
                    sql.create_city(NewCity {
                        name: (*city).to_owned(),
                        region: (*region).to_owned(),
                        country_code: (*code).to_owned(),
                    })
                    .await?
                }
            };
            cities.push((found, (*code).to_owned()));
        }
    }
    let mut created_products = false;
    for (category, items) in PRODUCTS {
        for (i, (name, price)) in items.iter().enumerate() {
            let sku = format!("{}-{:03}", category.to_uppercase(), i + 1);
            match sql
                .create_product(NewProduct {
                    sku,
                    name: (*name).to_owned(),
                    category: (*category).to_owned(),
                    price_cents: *price,
                    stock: 1_000_000,
                })
                .await
            {
                Ok(_) => created_products = true,
                Err(mod8_orm::Error::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if created_products {
        app.invalidate_model().await;
    }
    let products = sql.products(None).await?;
    Ok(Catalogue { cities, products })
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A weighted random event type.
pub fn random_event_type(rng: &mut impl Rng) -> &'static str {
    let total: u32 = EVENT_TYPES.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for (t, w) in EVENT_TYPES {
        if pick < *w {
            return t;
        }
        pick -= w;
    }
    "page_view"
}

/// Seeds `users` users (and their addresses, orders and events) on the configured backends.
///
/// # Errors
///
/// A backend failing.
pub async fn run(users: usize) -> anyhow::Result<()> {
    let app = App::build(AppConfig::from_env()?).await?;
    let result = seed(&app, users).await;
    app.shutdown().await;
    let summary = result?;
    println!("{summary}");
    Ok(())
}

/// Seeds into an existing app; returns a one-line summary.
///
/// # Errors
///
/// A backend failing.
pub async fn seed(app: &Arc<App>, users: usize) -> anyhow::Result<String> {
    let catalogue = catalogue(app).await?;
    let mut rng = StdRng::from_os_rng();
    let run_tag: String = (0..6)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();

    // Addresses: a pool shared by the users (a few per city).
    let mut addresses: Vec<Address> = Vec::new();
    for (city, _) in &catalogue.cities {
        for n in 1..=5 {
            addresses.push(
                app.sql
                    .create_address(NewAddress {
                        street: format!("{} Main Street", n * 10 + rng.random_range(0..9)),
                        postal_code: format!("{:05}", rng.random_range(10_000..99_999)),
                        city_id: city.id,
                    })
                    .await?,
            );
        }
    }

    let progress = bar(users as u64, "users");
    let now = Utc::now();
    for chunk_start in (0..users).step_by(1_000) {
        let chunk_end = (chunk_start + 1_000).min(users);
        let batch: Vec<NewUser> = (chunk_start..chunk_end)
            .map(|i| {
                let mut u = NewUser::new(
                    format!("seed.{run_tag}.{i}@example.com"),
                    format!("seed_{run_tag}_{i}"),
                );
                u.address_id = addresses.choose(&mut rng).map(|a| a.id);
                u.profile_score = rng.random_range(0.0..100.0);
                u.is_verified = rng.random_bool(0.7);
                let age = rng.random_range(0..365);
                u.created_at = Some(now - Days::days(age));
                u.last_active_at = Some(now - Days::days(rng.random_range(0..=age)));
                u
            })
            .collect();
        app.sql.create_users(batch).await?;
        progress.inc((chunk_end - chunk_start) as u64);
    }
    progress.finish();

    // The ids of this run's users, page by page.
    let mut ids = Vec::with_capacity(users);
    let mut page = PageRequest::first(1_000);
    loop {
        let got = app.sql.list_users(page).await?;
        ids.extend(
            got.items
                .iter()
                .filter(|u| u.username.starts_with(&format!("seed_{run_tag}_")))
                .map(|u| (u.id, u.created_at)),
        );
        if !got.has_more() {
            break;
        }
        page = page.next();
    }

    // Orders: about a third of the users buy 1–4 times, preferring one category.
    let buyers: Vec<_> = ids
        .iter()
        .filter(|_| rng.random_bool(0.35))
        .copied()
        .collect();
    let progress = bar(buyers.len() as u64, "orders");
    let mut orders = Vec::new();
    for (user_id, created_at) in &buyers {
        let favourite = rng.random_range(0..PRODUCTS.len());
        for _ in 0..rng.random_range(1..=4) {
            let lines: Vec<OrderLine> = (0..rng.random_range(1..=3))
                .filter_map(|_| {
                    let category = if rng.random_bool(0.7) {
                        PRODUCTS[favourite].0
                    } else {
                        PRODUCTS[rng.random_range(0..PRODUCTS.len())].0
                    };
                    let candidates: Vec<_> = catalogue
                        .products
                        .iter()
                        .filter(|p| p.category == category)
                        .collect();
                    candidates.choose(&mut rng).map(|p| OrderLine {
                        product_id: p.id,
                        quantity: rng.random_range(1..=2),
                    })
                })
                .collect();
            let age = (now - *created_at).num_days().max(1);
            orders.push(NewOrder {
                user_id: *user_id,
                lines,
                created_at: Some(now - Days::days(rng.random_range(0..age))),
            });
        }
        progress.inc(1);
    }
    let order_count = orders.len();
    // Orders are separate transactions (stock checks); run a few at once.
    let failures = stream::iter(orders)
        .map(|o| {
            let sql = app.sql.clone();
            async move { sql.place_order(o).await }
        })
        .buffer_unordered(4)
        .filter(|r| futures::future::ready(r.is_err()))
        .count()
        .await;
    progress.finish();
    app.invalidate_model().await;

    // Events: ~10 per user over their lifetime, bulk-written in batches.
    let progress = bar((ids.len() * 10) as u64, "events");
    let mut batch = Vec::with_capacity(5_000);
    let mut events = 0usize;
    for (user_id, created_at) in &ids {
        let age_secs = (now - *created_at).num_seconds().max(60);
        for _ in 0..rng.random_range(5..=15) {
            let t = random_event_type(&mut rng);
            let product = catalogue.products.choose(&mut rng);
            let mut metadata = EventMetadata::default();
            if let Some(p) = product.filter(|_| t == "purchase" || t == "cart_add") {
                metadata.product = Some(p.id.to_string());
                metadata.category = Some(p.category.clone());
                metadata.price = Some(p.price_cents as f64 / 100.0);
            }
            batch.push(
                Event::new(user_id.to_string(), t)
                    .at(now - chrono::Duration::seconds(rng.random_range(0..age_secs)))
                    .with_metadata(metadata),
            );
            if batch.len() == 5_000 {
                events += batch.len();
                progress.inc(batch.len() as u64);
                app.docs.log_events(std::mem::take(&mut batch)).await?;
            }
        }
    }
    events += batch.len();
    progress.inc(batch.len() as u64);
    if !batch.is_empty() {
        app.docs.log_events(batch).await?;
    }
    progress.finish();
    Ok(format!(
        "seeded {} users ({} countries, {} cities, {} products), {} orders ({} refused), {} events (run tag {run_tag})",
        ids.len(),
        COUNTRIES.len(),
        catalogue.cities.len(),
        catalogue.products.len(),
        order_count - failures,
        failures,
        events,
    ))
}

/// `mod8 seed --planted`: users with planted taste groups
/// ([`mod8_datasci::simulate::planted_taste_groups`]: 10 groups of 6 bundles of 5 products,
/// 3–12 purchases per user in 2024, 80 % of them from the user's own bundles) written to the
/// configured SQL store as products, users and paid one-line orders — data on which
/// `mod8 recs eval` can tell collaborative filtering from popularity. No addresses or events.
///
/// # Errors
///
/// A backend failing.
pub async fn run_planted(users: usize, seed: u64) -> anyhow::Result<()> {
    let db = mod8_orm::OrmConfig::from_env()?.connect().await?;
    let summary = seed_planted(&db, users, seed).await?;
    println!("{summary}");
    Ok(())
}

/// Seeds `users` planted-taste users into `db` (see [`run_planted`]); returns a one-line
/// summary. Product SKUs and user names carry a random run tag, so seeding twice adds a second
/// independent set.
///
/// # Errors
///
/// Invalid parameters (0 users) or the database failing.
pub async fn seed_planted(
    db: &mod8_orm::DynDatabase,
    users: usize,
    seed: u64,
) -> anyhow::Result<String> {
    use mod8_datasci::simulate::{planted_taste_groups, TasteGroupParams};
    use mod8_orm::OrderStatus;
    if users == 0 {
        anyhow::bail!("--users must be at least 1");
    }
    let data = planted_taste_groups(&TasteGroupParams {
        customers: users,
        seed,
        ..Default::default()
    })?;
    let mut rng = StdRng::from_os_rng();
    let run_tag: String = (0..6)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    let mut products = std::collections::HashMap::new();
    for item in &data.catalog {
        let product = db
            .create_product(NewProduct {
                sku: format!("planted-{run_tag}-{}", item.id),
                name: format!("Planted {}", item.id),
                category: item.category.clone(),
                price_cents: (item.price * 100.0).round() as i64,
                stock: 1_000_000_000,
            })
            .await?;
        products.insert(item.id.clone(), product.id);
    }
    let progress = bar(data.customers.len() as u64, "planted users");
    let mut orders = 0usize;
    for (i, customer) in data.customers.iter().enumerate() {
        let user = db
            .create_user(NewUser::new(
                format!("planted.{run_tag}.{i}@example.com"),
                format!("planted_{run_tag}_{i}"),
            ))
            .await?;
        for (n, purchase) in customer.purchases.iter().enumerate() {
            let product_id = products[&purchase.product_id];
            // Same-day purchases keep their order by minute.
            let at = purchase
                .date
                .and_hms_opt(12, (n % 60) as u32, 0)
                .map(|t| t.and_utc());
            let placed = db
                .place_order(NewOrder {
                    user_id: user.id,
                    lines: vec![OrderLine {
                        product_id,
                        quantity: 1,
                    }],
                    created_at: at,
                })
                .await?;
            db.set_order_status(placed.order.id, OrderStatus::Paid)
                .await?;
            orders += 1;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(format!(
        "planted: {} users in {} taste groups, {} products, {orders} paid orders (run {run_tag})",
        data.customers.len(),
        data.item_groups.iter().max().map_or(0, |g| g + 1),
        data.catalog.len()
    ))
}
