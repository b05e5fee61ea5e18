//! mod8-orm end to end: seeds a small realistic data set (four countries, eight cities, a
//! catalogue, users and their orders) and walks through every repository method, printing
//! readable results.
//!
//! `cargo run -p mod8-examples --example orm` runs on in-memory SQLite; with
//! `MOD8_POSTGRES_URL` set it runs on PostgreSQL, in a fresh database dropped at the end.

// An example, like a test: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mod8_orm::chrono::{TimeZone, Utc};
use mod8_orm::serde_json::json;
use mod8_orm::sqlx::{Connection, Executor};
use mod8_orm::{
    Database, NewAddress, NewCity, NewCountry, NewOrder, NewProduct, NewUser, OrderLine,
    OrderStatus, OrmConfig, PageRequest, UserUpdate,
};

const COUNTRIES: [(&str, &str, i64, i64); 4] = [
    ("Germany", "DE", 83_200_000, 5_180_000),
    ("France", "FR", 68_000_000, 4_400_000),
    ("Japan", "JP", 124_500_000, 3_380_000),
    ("Brazil", "BR", 203_000_000, 1_020_000),
];
const CITIES: [(&str, &str, &str); 8] = [
    ("Berlin", "Berlin", "DE"),
    ("Hamburg", "Hamburg", "DE"),
    ("Munich", "Bavaria", "DE"),
    ("Paris", "Ile-de-France", "FR"),
    ("Lyon", "Auvergne-Rhone-Alpes", "FR"),
    ("Tokyo", "Kanto", "JP"),
    ("Osaka", "Kansai", "JP"),
    ("Sao Paulo", "Sao Paulo", "BR"),
];
const PRODUCTS: [(&str, &str, &str, i64); 6] = [
    ("BK-RUST", "Programming Rust", "books", 4_999),
    (
        "BK-DDIA",
        "Designing Data-Intensive Applications",
        "books",
        4_499,
    ),
    ("CR-SQL", "SQL performance course", "courses", 12_900),
    ("HW-KB", "Mechanical keyboard", "hardware", 13_999),
    ("HW-MOUSE", "Vertical mouse", "hardware", 5_499),
    ("SW-IDE", "IDE licence (1 year)", "software", 19_900),
];
const NAMES: [&str; 12] = [
    "ada", "grace", "linus", "margaret", "ken", "barbara", "yukihiro", "sophie", "jean", "hiro",
    "ana", "joao",
];

/// Where to run: PostgreSQL in a fresh database when the URL is set, else in-memory SQLite.
async fn open() -> (mod8_orm::DynDatabase, Option<(String, String)>) {
    let config = OrmConfig::from_env().unwrap();
    if !config.url.starts_with("postgres") {
        println!("backend: SQLite in memory (set MOD8_POSTGRES_URL for PostgreSQL)");
        return (config.connect().await.unwrap(), None);
    }
    let name = format!("mod8_orm_example_{}", std::process::id());
    let mut admin = mod8_orm::sqlx::PgConnection::connect(&config.url)
        .await
        .unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = with_database(&config.url, &name);
    println!("backend: PostgreSQL, database {name} (dropped at the end)");
    let db = OrmConfig::new(&url).connect().await.unwrap();
    (db, Some((config.url, name)))
}

/// `url` naming database `name` instead, keeping credentials, host and `?parameters`
/// (`postgres://u:p@db:5432/app?sslmode=require` -> `postgres://u:p@db:5432/<name>?sslmode=require`).
fn with_database(url: &str, name: &str) -> String {
    let (base, params) = match url.split_once('?') {
        Some((base, params)) => (base, Some(params)),
        None => (url, None),
    };
    // The path starts at the first '/' after the authority (`scheme://user:pass@host:port`).
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{name}", &base[..path]);
    if let Some(params) = params {
        out.push('?');
        out.push_str(params);
    }
    out
}

fn euros(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[tokio::main]
async fn main() {
    let (db, cleanup) = open().await;
    let db: &dyn Database = &*db;

    println!("\n== seeding");
    for (name, code, population, gdp) in COUNTRIES {
        db.create_country(NewCountry {
            name: name.into(),
            iso_code: code.into(),
            population,
            gdp_per_capita_cents: gdp,
        })
        .await
        .unwrap();
    }
    let mut cities = Vec::new();
    for (name, region, code) in CITIES {
        cities.push(
            db.create_city(NewCity {
                name: name.into(),
                region: region.into(),
                country_code: code.into(),
            })
            .await
            .unwrap(),
        );
    }
    let mut products = Vec::new();
    for (sku, name, category, price) in PRODUCTS {
        products.push(
            db.create_product(NewProduct {
                sku: sku.into(),
                name: name.into(),
                category: category.into(),
                price_cents: price,
                stock: 50,
            })
            .await
            .unwrap(),
        );
    }
    let mut users = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let city = &cities[i % cities.len()];
        let mut user = NewUser::new(format!("{name}@example.org"), *name);
        user.profile_score = 20.0 + (i as f64 * 37.0) % 80.0;
        user.is_verified = i % 3 != 0;
        user.created_at = Some(
            Utc.with_ymd_and_hms(2024, 1 + (i as u32 % 4), 3 + i as u32, 9, 0, 0)
                .unwrap(),
        );
        user.last_active_at = Some(
            Utc.with_ymd_and_hms(2024, 5, 1 + i as u32, 12, 0, 0)
                .unwrap(),
        );
        let (user, _) = db
            .create_user_with_address(
                NewAddress {
                    street: format!(
                        "{} {}",
                        ["Main St", "Rue de la Paix", "Ginza", "Avenida Paulista"][i % 4],
                        i + 1
                    ),
                    postal_code: format!("{:05}", 10_000 + i * 7),
                    city_id: city.id,
                },
                user,
            )
            .await
            .unwrap();
        users.push(user);
    }
    let nomad = db
        .create_user(NewUser::new("nomad@example.org", "nomad"))
        .await
        .unwrap();
    let bulk: Vec<NewUser> = (0..500)
        .map(|i| {
            let mut u = NewUser::new(format!("reader{i}@example.org"), format!("reader{i}"));
            u.profile_score = ((i * 37) % 100) as f64;
            u.is_verified = i % 3 != 0;
            u.created_at = Some(
                Utc.with_ymd_and_hms(2024, 1 + (i % 4) as u32, 1 + (i % 28) as u32, 8, 0, 0)
                    .unwrap(),
            );
            u.last_active_at = Some(
                Utc.with_ymd_and_hms(2024, 4 + (i % 3) as u32, 1, 8, 0, 0)
                    .unwrap(),
            );
            u
        })
        .collect();
    let inserted = db.create_users(bulk).await.unwrap();
    println!(
        "{} countries, {} cities, {} products, {} users with addresses, 1 without, {inserted} bulk-inserted",
        COUNTRIES.len(), cities.len(), products.len(), users.len()
    );
    for (i, user) in users.iter().enumerate() {
        let lines: Vec<OrderLine> = (0..1 + i % 3)
            .map(|k| OrderLine {
                product_id: products[(i + k * 2) % products.len()].id,
                quantity: 1 + (k as i64),
            })
            .collect();
        db.place_order(NewOrder {
            user_id: user.id,
            lines,
            created_at: None,
        })
        .await
        .unwrap();
    }

    println!("\n== users");
    let ada = db.get_user(users[0].id).await.unwrap();
    println!(
        "get_user: {} <{}> score {:.0}",
        ada.username, ada.email, ada.profile_score
    );
    println!(
        "find_user_by_email(GRACE@example.org): {:?}",
        db.find_user_by_email("GRACE@example.org")
            .await
            .unwrap()
            .map(|u| u.username)
    );
    let ada = db
        .update_user(
            ada.id,
            UserUpdate {
                profile_score: Some(95.0),
                is_verified: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    println!(
        "update_user: {} now score {:.0}, verified {}",
        ada.username, ada.profile_score, ada.is_verified
    );
    let page = db.list_users(PageRequest::first(5)).await.unwrap();
    println!(
        "list_users: page of {} of {} (more: {}): {}",
        page.items.len(),
        page.total,
        page.has_more(),
        page.items
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let names = |users: Vec<mod8_orm::User>| {
        users
            .into_iter()
            .map(|u| u.username)
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "users_in_country(Germany): {}",
        names(db.users_in_country("Germany").await.unwrap())
    );
    println!(
        "users_in_city(Tokyo): {}",
        names(db.users_in_city("Tokyo").await.unwrap())
    );
    let before = db.statements_executed();
    let located = db
        .users_with_location(PageRequest::first(13))
        .await
        .unwrap();
    println!(
        "users_with_location: {} users in {} statement",
        located.len(),
        db.statements_executed() - before
    );
    for u in located.iter().take(4) {
        match &u.location {
            Some(l) => println!(
                "  {:<10} {}, {} {}, {} ({})",
                u.user.username,
                l.address.street,
                l.address.postal_code,
                l.city.name,
                l.country.name,
                l.country.iso_code
            ),
            None => println!("  {:<10} (no address)", u.user.username),
        }
    }
    let stats = db.user_stats().await.unwrap();
    println!(
        "user_stats: {} users, {:.0}% verified, score min {:.0} / avg {:.1} / max {:.0}",
        stats.count,
        stats.verified_share * 100.0,
        stats.min_profile_score.unwrap_or(0.0),
        stats.avg_profile_score.unwrap_or(0.0),
        stats.max_profile_score.unwrap_or(0.0)
    );
    println!("users_by_activity (top 5):");
    for r in db.users_by_activity(5).await.unwrap() {
        println!(
            "  #{} {:<10} {} orders, last active {}",
            r.rank,
            r.username,
            r.orders,
            r.last_active_at.format("%Y-%m-%d")
        );
    }
    db.delete_user(nomad.id).await.unwrap();
    println!(
        "delete_user(nomad): then get_user -> {}",
        db.get_user(nomad.id).await.unwrap_err()
    );

    println!("\n== locations");
    println!(
        "country_by_code(jp): {}",
        db.country_by_code("jp").await.unwrap().name
    );
    println!(
        "find_city(Lyon, FR): {:?}",
        db.find_city("Lyon", "FR").await.unwrap().map(|c| c.region)
    );
    let address = db
        .create_address(NewAddress {
            street: "Alexanderplatz 1".into(),
            postal_code: "10178".into(),
            city_id: cities[0].id,
        })
        .await
        .unwrap();
    let location = db.location(address.id).await.unwrap();
    println!(
        "create_address + location: {}, {} {}",
        location.address.street, location.city.name, location.country.name
    );
    println!(
        "addresses_in_city(Berlin): {}",
        db.addresses_in_city(cities[0].id).await.unwrap().len()
    );
    for c in db.countries_with_cities().await.unwrap() {
        println!(
            "  {:<8} {}",
            c.country.name,
            c.cities
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("country_stats:");
    for s in db.country_stats().await.unwrap() {
        println!(
            "  {:<8} {} users in {} cities, avg score {:.1}, {:.3} users per million inhabitants",
            s.country.name,
            s.users,
            s.cities,
            s.avg_profile_score.unwrap_or(0.0),
            s.users_per_million.unwrap_or(0.0)
        );
    }

    println!("\n== products and orders");
    println!(
        "products(hardware): {}",
        db.products(Some("hardware"))
            .await
            .unwrap()
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let kb = db.restock(products[3].id, 10).await.unwrap();
    println!("restock: {} now {} in stock", kb.name, kb.stock);
    let book = db.get_product(products[0].id).await.unwrap();
    println!(
        "get_product: {} {:?} ({}), {} EUR, {} in stock",
        book.sku,
        book.name,
        book.category,
        euros(book.price_cents),
        book.stock
    );
    let order = db
        .place_order(NewOrder {
            user_id: ada.id,
            lines: vec![
                OrderLine {
                    product_id: products[0].id,
                    quantity: 2,
                },
                OrderLine {
                    product_id: products[2].id,
                    quantity: 1,
                },
            ],
            created_at: None,
        })
        .await
        .unwrap();
    println!(
        "place_order: {} items, total {} EUR, status {}",
        order.items.len(),
        euros(order.order.total_cents),
        order.order.status
    );
    let short = db
        .place_order(NewOrder {
            user_id: ada.id,
            lines: vec![OrderLine {
                product_id: products[5].id,
                quantity: 1_000,
            }],
            created_at: None,
        })
        .await;
    println!("place_order(1000 IDE licences): {}", short.unwrap_err());
    println!(
        "get_order: {} lines",
        db.get_order(order.order.id).await.unwrap().items.len()
    );
    let paid = db
        .set_order_status(order.order.id, OrderStatus::Paid)
        .await
        .unwrap();
    println!("set_order_status: {}", paid.status);
    println!(
        "orders_of_user(ada): {} orders",
        db.orders_of_user(ada.id).await.unwrap().len()
    );
    println!("purchase_history(ada):");
    for p in db.purchase_history(ada.id).await.unwrap() {
        println!(
            "  {} x {} ({}) at {} EUR",
            p.quantity,
            p.name,
            p.category,
            euros(p.unit_price_cents)
        );
    }
    println!("product_popularity (top 3):");
    for p in db.product_popularity(3).await.unwrap() {
        println!(
            "  {:<40} {} sold to {} buyers, revenue {} EUR",
            p.name,
            p.units_sold,
            p.buyers,
            euros(p.revenue_cents)
        );
    }

    println!("\n== analytics");
    for d in db.user_distribution().await.unwrap() {
        println!(
            "  {} {:<8} {} users ({:.0}%)",
            d.iso_code,
            d.country,
            d.users,
            d.share * 100.0
        );
    }
    println!("registration_cohorts (active since 2024-05-05):");
    for c in db
        .registration_cohorts(Utc.with_ymd_and_hms(2024, 5, 5, 0, 0, 0).unwrap())
        .await
        .unwrap()
    {
        println!(
            "  {} {:>4} users, {:>3.0}% verified, {:>3.0}% active, avg score {:.1}, {} orders",
            c.month,
            c.users,
            c.verified_share * 100.0,
            c.active_share * 100.0,
            c.avg_profile_score,
            c.orders
        );
    }
    println!("top_spenders (>= 100 EUR):");
    for h in db.top_spenders(10_000, 3).await.unwrap() {
        println!(
            "  {:<10} {} EUR in {} orders",
            h.username,
            euros(h.total_spent_cents),
            h.orders
        );
    }
    println!("top_profiles (score >= 70):");
    for h in db.top_profiles(70.0, 3).await.unwrap() {
        println!(
            "  {:<10} score {:.0}, spent {} EUR",
            h.username,
            h.profile_score,
            euros(h.total_spent_cents)
        );
    }

    println!("\n== unit of work and outbox");
    let uow = db.begin().await.unwrap();
    let (newbie, _) = uow
        .create_user_with_address(
            NewAddress {
                street: "Shibuya 2-21-1".into(),
                postal_code: "150-0002".into(),
                city_id: cities[5].id,
            },
            NewUser::new("newbie@example.org", "newbie"),
        )
        .await
        .unwrap();
    uow.enqueue(
        "user.registered",
        json!({ "user_id": newbie.id, "city": "Tokyo" }),
    )
    .await
    .unwrap();
    uow.commit().await.unwrap();
    let uow = db.begin().await.unwrap();
    uow.create_user(NewUser::new("ghost@example.org", "ghost"))
        .await
        .unwrap();
    uow.enqueue("user.registered", json!({ "username": "ghost" }))
        .await
        .unwrap();
    uow.rollback().await.unwrap();
    println!(
        "committed newbie; rolled back ghost -> find ghost: {:?}",
        db.find_user_by_email("ghost@example.org").await.unwrap()
    );
    println!("count_pending: {}", db.count_pending().await.unwrap());
    let claimed = db.claim_pending(10, Duration::from_secs(30)).await.unwrap();
    for m in &claimed {
        println!(
            "  claimed {} {} (attempt {})",
            m.topic, m.payload, m.attempts
        );
    }
    let ids: Vec<_> = claimed.iter().map(|m| m.id).collect();
    println!("mark_sent: {}", db.mark_sent(&ids).await.unwrap());
    println!("count_pending: {}", db.count_pending().await.unwrap());

    println!("\n== nested units of work (savepoints)");
    let uow = db.begin().await.unwrap();
    uow.create_user(NewUser::new("nina@example.org", "nina"))
        .await
        .unwrap();
    // A nested unit that commits: its work joins the outer unit's.
    let nested = uow.begin_nested().await.unwrap();
    nested
        .create_user(NewUser::new("otto@example.org", "otto"))
        .await
        .unwrap();
    nested.commit().await.unwrap();
    // A failure contained in a nested unit: rolled back alone, the outer unit carries on
    // (on PostgreSQL a failed statement outside a savepoint would abort the whole unit).
    let nested = uow.begin_nested().await.unwrap();
    let dup = nested
        .create_user(NewUser::new("nina@example.org", "nina2"))
        .await;
    println!("  duplicate inside a savepoint: {}", dup.unwrap_err());
    nested.rollback().await.unwrap();
    // A nested unit dropped without commit is rolled back.
    let nested = uow.begin_nested().await.unwrap();
    nested
        .create_user(NewUser::new("paul@example.org", "paul"))
        .await
        .unwrap();
    drop(nested);
    uow.commit().await.unwrap();
    for name in ["nina", "otto", "paul"] {
        let found = db
            .find_user_by_email(&format!("{name}@example.org"))
            .await
            .unwrap();
        println!(
            "  {name:<5} {}",
            if found.is_some() {
                "committed"
            } else {
                "rolled back"
            }
        );
    }

    println!("\n== bad input");
    for (what, result) in [
        (
            "invalid email",
            db.create_user(NewUser::new("ada-at-example.org", "x"))
                .await
                .map(drop),
        ),
        (
            "empty username",
            db.create_user(NewUser::new("x@example.org", ""))
                .await
                .map(drop),
        ),
        (
            "duplicate username",
            db.create_user(NewUser::new("x@example.org", "ada"))
                .await
                .map(drop),
        ),
        (
            "unknown country code",
            db.country_by_code("XX").await.map(drop),
        ),
        (
            "negative quantity",
            db.restock(products[0].id, -3).await.map(drop),
        ),
    ] {
        let err: mod8_orm::Error = result.unwrap_err();
        println!("  {what:<22} -> {err}");
    }
    println!(
        "\n{} statements issued through the repositories",
        db.statements_executed()
    );

    db.close().await;
    if let Some((admin_url, name)) = cleanup {
        let mut admin = mod8_orm::sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap();
        admin
            .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
    }
}
