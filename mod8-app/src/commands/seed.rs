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
    Address, City, NewAddress, NewOrder, NewProduct, NewUser, OrderLine, PageRequest, Product,
};
use rand::prelude::*;

use crate::{App, AppConfig};

/// A country of the seed data (the reference countries, [`crate::reference::COUNTRIES`]).
pub use crate::reference::ReferenceCountry as SeedCountry;
/// The seed countries and cities: the reference ones.
pub use crate::reference::COUNTRIES;

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
    // The reference data first: countries, cities and the starter catalog.
    crate::reference::ensure(sql).await?;
    let cities = crate::reference::countries(sql).await?;
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

/// Seeds `users` users (and their addresses, orders and events) and a catalog of `products`
/// products ([`seed_catalog`]) on the configured backends.
///
/// # Errors
///
/// A backend failing.
pub async fn run(users: usize, products: usize) -> anyhow::Result<()> {
    let app = App::build(AppConfig::from_env()?).await?;
    let result = seed(&app, users, products).await;
    app.shutdown().await;
    let summary = result?;
    println!("{summary}");
    Ok(())
}

/// Seeds into an existing app (`products` catalog products, see [`seed_catalog`]); returns a
/// summary.
///
/// # Errors
///
/// A backend failing.
pub async fn seed(app: &Arc<App>, users: usize, products: usize) -> anyhow::Result<String> {
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
    let buyer_ids: Vec<uuid::Uuid> = buyers.iter().map(|(id, _)| *id).collect();
    let catalog = seed_catalog(app, products, &buyer_ids, &run_tag).await?;
    app.invalidate_model().await;
    Ok(format!(
        "{catalog}\nseeded {} users ({} countries, {} cities, {} products), {} orders ({} refused), {} events (run tag {run_tag})",
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

/// Product variants' sizes, in order (a product with n variants has the first n).
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL"];
/// Root departments of the seeded category tree.
const DEPARTMENTS: &[&str] = &["Electronics", "Home", "Garden", "Sports", "Toys"];
/// Second-level categories under each department.
const AISLES: &[&str] = &["Essentials", "Premium", "Accessories", "Outlet"];
/// Third-level categories under each aisle.
const SHELVES: &[&str] = &["New", "Classic", "Bundles"];
/// Products written per bulk-load call (one transaction each).
const LOAD_BATCH: usize = 2_000;

/// What [`seed_catalog`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogSeed {
    /// Categories created (three levels).
    pub categories: usize,
    /// Products created.
    pub products: usize,
    /// Variants created (1–5 per product).
    pub variants: usize,
    /// Images created.
    pub images: usize,
    /// Checkouts placed and paid (some then shipped).
    pub orders: usize,
    /// Checkouts refused (stock short).
    pub refused: usize,
    /// Reviews written, every one by a buyer of the product (verified).
    pub reviews: usize,
}

impl std::fmt::Display for CatalogSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "catalog: {} categories, {} products, {} variants, {} images; {} paid orders ({} refused), {} verified reviews",
            self.categories,
            self.products,
            self.variants,
            self.images,
            self.orders,
            self.refused,
            self.reviews
        )
    }
}

/// Seeds a catalog: a three-level category tree (5 departments × 4 aisles × 3 shelves, slugs
/// tagged with `run_tag`), `products` products on the shelves with 1–5 variants each, 1–3
/// images and opening stock (a `receipt` movement each), written through the database's bulk
/// loader ([`mod8_orm::CatalogBulkLoad`]: `COPY` on PostgreSQL, multi-row `INSERT`s on
/// SQLite) in batches of 2,000 products. Then each of `buyers` checks out 1–3 variants once
/// or twice (paid, a third of the orders then shipped), and reviews about half of what they
/// bought: reviews follow purchase history, so each is a verified purchase.
///
/// # Errors
///
/// A backend failing.
pub async fn seed_catalog(
    app: &App,
    products: usize,
    buyers: &[uuid::Uuid],
    run_tag: &str,
) -> anyhow::Result<CatalogSeed> {
    use mod8_orm::{NewCatalogProduct, NewCategory, NewImage, NewVariant};
    let mut rng = StdRng::from_os_rng();
    let mut out = CatalogSeed::default();
    if products == 0 {
        return Ok(out);
    }
    let total = DEPARTMENTS.len() * (1 + AISLES.len() * (1 + SHELVES.len()));
    let progress = bar(total as u64, "categories");
    let mut shelves = Vec::new();
    for (d, department) in DEPARTMENTS.iter().enumerate() {
        let root = app
            .sql
            .create_category(NewCategory {
                parent_id: None,
                slug: format!("{run_tag}-d{d}"),
                name: (*department).to_owned(),
            })
            .await?;
        for (a, aisle) in AISLES.iter().enumerate() {
            let middle = app
                .sql
                .create_category(NewCategory {
                    parent_id: Some(root.id),
                    slug: format!("{run_tag}-d{d}-a{a}"),
                    name: format!("{department} {aisle}"),
                })
                .await?;
            for (s, shelf) in SHELVES.iter().enumerate() {
                shelves.push(
                    app.sql
                        .create_category(NewCategory {
                            parent_id: Some(middle.id),
                            slug: format!("{run_tag}-d{d}-a{a}-s{s}"),
                            name: format!("{department} {aisle} {shelf}"),
                        })
                        .await?,
                );
                progress.inc(1);
            }
            progress.inc(1);
        }
        progress.inc(1);
    }
    progress.finish();
    out.categories = total;

    let progress = bar(products as u64, "products");
    let mut variants: Vec<(uuid::Uuid, uuid::Uuid, i64)> = Vec::new();
    for start in (0..products).step_by(LOAD_BATCH) {
        let end = (start + LOAD_BATCH).min(products);
        let batch: Vec<NewCatalogProduct> = (start..end)
            .map(|i| {
                let shelf = &shelves[rng.random_range(0..shelves.len())];
                let base = rng.random_range(199..50_000i64);
                let sku = format!("{run_tag}-{i:07}");
                NewCatalogProduct {
                    sku: sku.clone(),
                    name: format!("{} item {i}", shelf.name),
                    category_id: shelf.id,
                    brand: Some(format!("Brand {}", rng.random_range(1..=50))),
                    description: format!("Seeded product {i} of run {run_tag}."),
                    attributes: serde_json::json!({ "seeded": true }),
                    variants: SIZES[..rng.random_range(1..=SIZES.len())]
                        .iter()
                        .enumerate()
                        .map(|(n, size)| NewVariant {
                            sku: format!("{sku}-{size}"),
                            options: std::collections::BTreeMap::from([(
                                "size".to_owned(),
                                (*size).to_owned(),
                            )]),
                            price_cents: base + 100 * n as i64,
                            currency: "EUR".to_owned(),
                            initial_stock: rng.random_range(0..=200),
                        })
                        .collect(),
                    images: (0..rng.random_range(1..=3))
                        .map(|n| NewImage {
                            url: format!("https://images.example.com/{sku}/{n}.jpg"),
                            alt_text: format!("Seeded product {i}, view {}", n + 1),
                        })
                        .collect(),
                }
            })
            .collect();
        out.images += batch.iter().map(|p| p.images.len()).sum::<usize>();
        let stock: Vec<Vec<i64>> = batch
            .iter()
            .map(|p| p.variants.iter().map(|v| v.initial_stock).collect())
            .collect();
        let loaded = match app.sql.catalog_bulk_load() {
            Some(loader) => loader.load_catalog(batch).await?,
            None => {
                let mut loaded = Vec::with_capacity(batch.len());
                for p in batch {
                    let page = app.sql.create_catalog_product(p).await?;
                    loaded.push(mod8_orm::LoadedProduct {
                        product_id: page.product.id,
                        variant_ids: page.variants.iter().map(|v| v.variant.id).collect(),
                    });
                }
                loaded
            }
        };
        for (product, stock) in loaded.iter().zip(stock) {
            for (variant, units) in product.variant_ids.iter().zip(stock) {
                variants.push((product.product_id, *variant, units));
            }
        }
        out.products += loaded.len();
        progress.inc((end - start) as u64);
    }
    progress.finish();
    out.variants = variants.len();

    // Purchases of stocked variants, then reviews of what was bought.
    let stocked: Vec<(uuid::Uuid, uuid::Uuid)> = variants
        .iter()
        .filter(|(_, _, units)| *units > 0)
        .map(|(p, v, _)| (*p, *v))
        .collect();
    if stocked.is_empty() {
        return Ok(out);
    }
    let progress = bar(buyers.len() as u64, "checkouts");
    let mut bought: Vec<(uuid::Uuid, uuid::Uuid)> = Vec::new();
    for buyer in buyers {
        for _ in 0..rng.random_range(1..=2) {
            let mut lines: Vec<(uuid::Uuid, uuid::Uuid)> = (0..rng.random_range(1..=3))
                .map(|_| stocked[rng.random_range(0..stocked.len())])
                .collect();
            lines.sort_by_key(|(_, v)| *v);
            lines.dedup_by_key(|(_, v)| *v);
            let checkout = mod8_orm::Checkout {
                user_id: *buyer,
                lines: Some(
                    lines
                        .iter()
                        .map(|(_, v)| mod8_orm::VariantLine {
                            variant_id: *v,
                            quantity: 1,
                        })
                        .collect(),
                ),
                shipping_address_id: None,
                billing_address_id: None,
            };
            match app.sql.checkout(checkout).await {
                Ok(order) => {
                    app.sql
                        .set_order_status(order.order.id, mod8_orm::OrderStatus::Paid)
                        .await?;
                    if rng.random_bool(1.0 / 3.0) {
                        app.sql
                            .set_order_status(order.order.id, mod8_orm::OrderStatus::Shipped)
                            .await?;
                    }
                    out.orders += 1;
                    bought.extend(lines.iter().map(|(p, _)| (*buyer, *p)));
                }
                Err(mod8_orm::Error::Conflict { .. }) => out.refused += 1,
                Err(e) => return Err(e.into()),
            }
        }
        progress.inc(1);
    }
    progress.finish();
    bought.sort();
    bought.dedup();
    let progress = bar(bought.len() as u64, "reviews");
    for (user_id, product_id) in bought {
        progress.inc(1);
        if !rng.random_bool(0.5) {
            continue;
        }
        let rating = rng.random_range(1..=5i16);
        let review = app
            .sql
            .create_review(mod8_orm::NewReview {
                product_id,
                user_id,
                rating,
                title: format!("{rating} stars"),
                body: "Seeded review of a purchase.".to_owned(),
            })
            .await?;
        if !review.verified_purchase {
            anyhow::bail!("a review of a paid purchase was not verified: {review:?}");
        }
        out.reviews += 1;
    }
    progress.finish();
    Ok(out)
}
