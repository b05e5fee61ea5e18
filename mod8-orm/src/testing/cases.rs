//! The conformance cases over a whole store: each takes a freshly migrated, empty database
//! (or the narrowest part of one it exercises) and panics when the backend misbehaves. The
//! cases about the user repository alone are in the user-repository suite.
#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::collections::HashSet;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use super::fixtures::{line, order, seed_world, user_in};
use super::users::{bulk_users, expect_invalid, expect_user_input_rejected, BULK_USERS};
use crate::*;

/// Bad input is a typed validation error and no statement reaches the database.
pub async fn case_validation_before_database(db: &dyn Database) {
    let world = seed_world(db).await;
    let before = db.statements_executed();
    expect_user_input_rejected(db).await;
    expect_invalid(
        db.create_country(NewCountry {
            name: "Atlantis".into(),
            iso_code: "XX".into(),
            population: 1,
            gdp_per_capita_cents: 1,
        })
        .await,
        "country_code",
    );
    expect_invalid(db.country_by_code("ZZZ").await, "country_code");
    expect_invalid(db.restock(world.products[0].id, -5).await, "quantity");
    let someone = Uuid::new_v4();
    expect_invalid(
        db.place_order(NewOrder {
            user_id: someone,
            lines: vec![line(&world.products[0], -1)],
            created_at: None,
        })
        .await,
        "quantity",
    );
    expect_invalid(
        db.place_order(NewOrder {
            user_id: someone,
            lines: vec![],
            created_at: None,
        })
        .await,
        "lines",
    );
    assert_eq!(
        db.statements_executed(),
        before,
        "validation must happen before any statement"
    );
    assert_eq!(db.user_stats().await.unwrap().count, 0);
}

/// Duplicate SKUs, country codes and names, and city names within a country are conflicts
/// naming the entity and the field.
pub async fn case_catalogue_conflicts_name_the_field<R>(db: &R)
where
    R: LocationRepository + ProductRepository + ?Sized,
{
    let world = seed_world(db).await;
    match db
        .create_product(NewProduct {
            sku: world.products[0].sku.clone(),
            name: "dup".into(),
            category: "books".into(),
            price_cents: 1,
            stock: 1,
        })
        .await
    {
        Err(Error::Conflict { entity, field, .. }) => {
            assert_eq!(entity, "product");
            assert_eq!(field, "sku");
        }
        other => panic!("expected a sku conflict, got {other:?}"),
    }
    match db
        .create_country(NewCountry {
            name: "Deutschland".into(),
            iso_code: "de".into(),
            population: 1,
            gdp_per_capita_cents: 1,
        })
        .await
    {
        Err(Error::Conflict { entity, field, .. }) => {
            assert_eq!(entity, "country");
            assert_eq!(field, "iso_code");
        }
        other => panic!("expected an iso_code conflict, got {other:?}"),
    }
    // Country names are unique too (an index whose name contains "id" must not be read as
    // a conflict on `id`).
    match db
        .create_country(NewCountry {
            name: "Germany".into(),
            iso_code: "AT".into(),
            population: 1,
            gdp_per_capita_cents: 1,
        })
        .await
    {
        Err(Error::Conflict {
            entity,
            field,
            message,
        }) => {
            assert_eq!(entity, "country");
            assert_eq!(field, "name");
            assert!(message.contains("country"), "{message}");
        }
        other => panic!("expected a name conflict, got {other:?}"),
    }
    match db
        .create_city(NewCity {
            name: "Berlin".into(),
            region: "Elsewhere".into(),
            country_code: "DE".into(),
        })
        .await
    {
        Err(Error::Conflict {
            entity,
            field,
            message,
        }) => {
            assert_eq!(entity, "city");
            assert_eq!(field, "name");
            assert!(message.contains("city"), "{message}");
        }
        other => panic!("expected a city name conflict, got {other:?}"),
    }
    // The same city name in another country is fine.
    db.create_city(NewCity {
        name: "Berlin".into(),
        region: "New Hampshire".into(),
        country_code: "FR".into(),
    })
    .await
    .unwrap();
}

/// Missing rows, and references to missing rows, are `NotFound` naming the entity (missing
/// users on their own: `case_missing_users_are_not_found`).
pub async fn case_missing_rows_are_not_found<R>(db: &R)
where
    R: UserRepository + LocationRepository + ProductRepository + OrderRepository + ?Sized,
{
    let world = seed_world(db).await;
    let missing = Uuid::new_v4();
    let entity = |r: Result<()>| match r {
        Err(Error::NotFound { entity, .. }) => entity,
        other => panic!("expected not found, got {other:?}"),
    };
    assert_eq!(entity(db.get_product(missing).await.map(drop)), "product");
    assert_eq!(entity(db.get_order(missing).await.map(drop)), "order");
    assert_eq!(entity(db.location(missing).await.map(drop)), "address");
    assert_eq!(entity(db.country_by_code("IT").await.map(drop)), "country");
    assert_eq!(
        entity(
            db.create_city(NewCity {
                name: "Rome".into(),
                region: "Lazio".into(),
                country_code: "IT".into(),
            })
            .await
            .map(drop)
        ),
        "country"
    );
    assert_eq!(
        entity(
            db.create_address(NewAddress {
                street: "Nowhere 1".into(),
                postal_code: "00000".into(),
                city_id: missing,
            })
            .await
            .map(drop)
        ),
        "city"
    );
    assert_eq!(entity(db.restock(missing, 1).await.map(drop)), "product");
    let ada = db
        .create_user(NewUser::new("ada@example.org", "ada"))
        .await
        .unwrap();
    assert_eq!(
        entity(
            db.place_order(NewOrder {
                user_id: ada.id,
                lines: vec![OrderLine {
                    product_id: missing,
                    quantity: 1
                }],
                created_at: None,
            })
            .await
            .map(drop)
        ),
        "product"
    );
    assert_eq!(
        entity(
            db.place_order(NewOrder {
                user_id: missing,
                lines: vec![line(&world.products[0], 1)],
                created_at: None,
            })
            .await
            .map(drop)
        ),
        "user"
    );
    // The failed order for a missing user reserved no stock.
    assert_eq!(
        db.get_product(world.products[0].id).await.unwrap().stock,
        world.products[0].stock
    );
}

/// Listing users with Address → City → Country is one statement for any N; the naive loop
/// is N + 1.
pub async fn case_eager_location_is_one_statement(db: &dyn Database) {
    let world = seed_world(db).await;
    for n in [5_usize, 20] {
        let have = db.user_stats().await.unwrap().count as usize;
        for i in have..n {
            let city = &world.cities[i % world.cities.len()];
            user_in(db, city, &format!("user{i}"), (i % 100) as f64).await;
        }
        let before = db.statements_executed();
        let eager = db
            .users_with_location(PageRequest::first(n as u32))
            .await
            .unwrap();
        assert_eq!(db.statements_executed() - before, 1, "eager load for {n}");
        assert_eq!(eager.len(), n);

        let before = db.statements_executed();
        let users = db.list_users(PageRequest::first(n as u32)).await.unwrap();
        let list_cost = db.statements_executed() - before;
        let mut naive = Vec::new();
        for u in &users.items {
            let location = db.location(u.address_id.unwrap()).await.unwrap();
            naive.push(UserWithLocation {
                user: u.clone(),
                location: Some(location),
            });
        }
        assert_eq!(
            db.statements_executed() - before - list_cost,
            n as u64,
            "one statement per user in the naive loop"
        );
        assert_eq!(naive, eager);
    }
    let eager = db.users_with_location(PageRequest::first(1)).await.unwrap();
    let location = eager[0].location.as_ref().unwrap();
    assert_eq!(location.city.country_id, location.country.id);
    assert_eq!(location.address.city_id, location.city.id);
    // A user without an address comes back without a location.
    let nomad = db
        .create_user(NewUser::new("nomad@example.org", "nomad"))
        .await
        .unwrap();
    let all = db
        .users_with_location(PageRequest::first(100))
        .await
        .unwrap();
    let found = all.iter().find(|u| u.user.id == nomad.id).unwrap();
    assert!(found.location.is_none());
}

/// Registration as the app does it: address, user, outbox row and an order in one unit.
async fn register(
    uow: Box<dyn UnitOfWork>,
    name: &str,
    city: &City,
    product: &Product,
) -> (Box<dyn UnitOfWork>, User) {
    let address = uow
        .create_address(NewAddress {
            street: format!("{name} 1"),
            postal_code: "75001".into(),
            city_id: city.id,
        })
        .await
        .unwrap();
    let mut user = NewUser::new(format!("{name}@example.org"), name);
    user.address_id = Some(address.id);
    let user = uow.create_user(user).await.unwrap();
    uow.enqueue("user.registered", json!({ "user_id": user.id }))
        .await
        .unwrap();
    uow.place_order(order(&user, vec![line(product, 2)]))
        .await
        .unwrap();
    // Reads inside the unit see its own writes.
    assert_eq!(uow.get_user(user.id).await.unwrap(), user);
    (uow, user)
}

/// Several repository calls commit or roll back together; dropping rolls back.
pub async fn case_unit_of_work(db: &dyn Database) {
    let world = seed_world(db).await;
    let paris = world.city("Paris");
    let (uow, rolled) = register(
        db.begin().await.unwrap(),
        "rolled",
        paris,
        &world.products[0],
    )
    .await;
    uow.rollback().await.unwrap();
    assert!(db
        .find_user_by_email("rolled@example.org")
        .await
        .unwrap()
        .is_none());
    assert!(db.addresses_in_city(paris.id).await.unwrap().is_empty());
    assert!(db
        .claim_pending(10, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    assert!(db.orders_of_user(rolled.id).await.unwrap().is_empty());
    assert_eq!(
        db.get_product(world.products[0].id).await.unwrap().stock,
        10
    );

    let (uow, dropped) = register(
        db.begin().await.unwrap(),
        "dropped",
        paris,
        &world.products[0],
    )
    .await;
    drop(uow);
    assert!(matches!(
        db.get_user(dropped.id).await,
        Err(Error::NotFound { .. })
    ));

    let (uow, kept) = register(db.begin().await.unwrap(), "kept", paris, &world.products[0]).await;
    uow.commit().await.unwrap();
    assert_eq!(db.get_user(kept.id).await.unwrap().username, "kept");
    assert_eq!(db.addresses_in_city(paris.id).await.unwrap().len(), 1);
    let pending = db.claim_pending(10, Duration::ZERO).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].payload, json!({ "user_id": kept.id }));
    assert_eq!(db.orders_of_user(kept.id).await.unwrap().len(), 1);
    assert_eq!(db.get_product(world.products[0].id).await.unwrap().stock, 8);
}

/// Savepoints: a nested unit rolls back alone; dropping it rolls it back too.
pub async fn case_nested_unit_of_work(db: &dyn Database) {
    let uow = db.begin().await.unwrap();
    let a = uow
        .create_user(NewUser::new("a@example.org", "aaa"))
        .await
        .unwrap();

    let nested = uow.begin_nested().await.unwrap();
    nested
        .create_user(NewUser::new("b@example.org", "bbb"))
        .await
        .unwrap();
    nested.rollback().await.unwrap();

    let nested = uow.begin_nested().await.unwrap();
    nested
        .create_user(NewUser::new("c@example.org", "ccc"))
        .await
        .unwrap();
    nested.commit().await.unwrap();

    let nested = uow.begin_nested().await.unwrap();
    nested
        .create_user(NewUser::new("d@example.org", "ddd"))
        .await
        .unwrap();
    drop(nested);

    // An expected failure is contained in a nested unit, which leaves the outer one usable
    // on every backend (PostgreSQL aborts a transaction at its first failed statement).
    let nested = uow.begin_nested().await.unwrap();
    let dup = nested
        .create_user(NewUser::new("a@example.org", "dup"))
        .await;
    assert!(matches!(dup, Err(Error::Conflict { .. })), "{dup:?}");
    nested.rollback().await.unwrap();
    uow.create_user(NewUser::new("e@example.org", "eee"))
        .await
        .unwrap();

    uow.commit().await.unwrap();
    let names: HashSet<String> = db
        .list_users(PageRequest::first(100))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert!(names.contains("aaa") && names.contains("ccc"), "{names:?}");
    assert!(
        !names.contains("bbb") && !names.contains("ddd"),
        "{names:?}"
    );
    assert!(names.contains("eee"), "{names:?}");
    assert_eq!(db.get_user(a.id).await.unwrap().username, "aaa");
}

/// A dropped nested unit is rolled back even when the next thing that happens is the outer
/// commit, or the end of an enclosing savepoint.
pub async fn case_dropped_nested_units_roll_back(db: &dyn Database) {
    let usernames = || async {
        db.list_users(PageRequest::first(100))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|u| u.username)
            .collect::<HashSet<String>>()
    };

    // Dropped, then straight to the outer commit.
    let uow = db.begin().await.unwrap();
    uow.create_user(NewUser::new("kept@example.org", "kept"))
        .await
        .unwrap();
    let nested = uow.begin_nested().await.unwrap();
    nested
        .create_user(NewUser::new("dropped@example.org", "dropped"))
        .await
        .unwrap();
    drop(nested);
    uow.commit().await.unwrap();
    assert_eq!(usernames().await, HashSet::from(["kept".to_owned()]));

    // A dropped grandchild, then its parent savepoint rolled back or released: the outer
    // unit stays usable (no stale savepoint name is rolled back later).
    for release_parent in [false, true] {
        let uow = db.begin().await.unwrap();
        let parent = uow.begin_nested().await.unwrap();
        let tag = if release_parent { "released" } else { "undone" };
        parent
            .create_user(NewUser::new(format!("{tag}@example.org"), tag))
            .await
            .unwrap();
        let child = parent.begin_nested().await.unwrap();
        child
            .create_user(NewUser::new(
                format!("child_{tag}@example.org"),
                format!("child_{tag}"),
            ))
            .await
            .unwrap();
        drop(child);
        if release_parent {
            parent.commit().await.unwrap();
        } else {
            parent.rollback().await.unwrap();
        }
        uow.create_user(NewUser::new(
            format!("after_{tag}@example.org"),
            format!("after_{tag}"),
        ))
        .await
        .unwrap();
        uow.commit().await.unwrap();
    }
    let names = usernames().await;
    let expected: HashSet<String> = ["kept", "released", "after_released", "after_undone"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, expected);

    // A unit nested inside a dropped sibling's savepoint cannot outlive it: its work is
    // undone with the dropped one and it says so instead of committing into nothing.
    let uow = db.begin().await.unwrap();
    let first = uow.begin_nested().await.unwrap();
    let second = uow.begin_nested().await.unwrap();
    second
        .create_user(NewUser::new("second@example.org", "second"))
        .await
        .unwrap();
    drop(first);
    assert!(matches!(
        second.commit().await,
        Err(Error::Validation { field, .. }) if field == "unit_of_work"
    ));
    uow.create_user(NewUser::new("last@example.org", "last"))
        .await
        .unwrap();
    uow.commit().await.unwrap();
    let names = usernames().await;
    assert!(
        names.contains("last") && !names.contains("second"),
        "{names:?}"
    );
}

/// Countries with their cities (batched) and per-country statistics.
pub async fn case_countries_and_stats(db: &dyn Database) {
    let world = seed_world(db).await;
    let before = db.statements_executed();
    let all = db.countries_with_cities().await.unwrap();
    assert_eq!(
        db.statements_executed() - before,
        2,
        "countries, then cities in one batch"
    );
    let view: Vec<(String, Vec<String>)> = all
        .iter()
        .map(|c| {
            (
                c.country.iso_code.clone(),
                c.cities.iter().map(|ci| ci.name.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            (
                "FR".to_string(),
                vec!["Lyon".to_string(), "Paris".to_string()]
            ),
            (
                "DE".to_string(),
                vec!["Berlin".to_string(), "Munich".to_string()]
            ),
            ("JP".to_string(), vec!["Tokyo".to_string()]),
        ]
    );
    assert_eq!(db.country_by_code("de").await.unwrap(), world.countries[0]);
    assert_eq!(
        db.find_city("Lyon", "FR").await.unwrap().as_ref(),
        Some(world.city("Lyon"))
    );
    assert_eq!(db.find_city("Lyon", "DE").await.unwrap(), None);

    user_in(db, world.city("Berlin"), "bb1", 40.0).await;
    user_in(db, world.city("Munich"), "mm1", 80.0).await;
    user_in(db, world.city("Paris"), "pp1", 50.0).await;
    let stats = db.country_stats().await.unwrap();
    let de = &stats[0];
    assert_eq!(de.country.iso_code, "DE");
    assert_eq!((de.users, de.cities), (2, 2));
    assert!((de.avg_profile_score.unwrap() - 60.0).abs() < 1e-9);
    assert!((de.users_per_million.unwrap() - 2.0 / 83.2).abs() < 1e-9);
    let jp = stats.iter().find(|s| s.country.iso_code == "JP").unwrap();
    assert_eq!((jp.users, jp.cities), (0, 1));
    assert_eq!(jp.avg_profile_score, None);
    assert_eq!(jp.users_per_million, Some(0.0));
}

/// Orders: prices from the catalogue, stock reserved, history, cancellation.
pub async fn case_orders(db: &dyn Database) {
    let world = seed_world(db).await;
    let ada = user_in(db, world.city("Berlin"), "ada", 50.0).await;
    let [book, book2, trowel, can] = [0, 1, 2, 3].map(|i| world.products[i].clone());
    let first = db
        .place_order(NewOrder {
            user_id: ada.id,
            lines: vec![line(&book, 2), line(&trowel, 3)],
            created_at: Some(Utc.with_ymd_and_hms(2024, 3, 1, 9, 0, 0).unwrap()),
        })
        .await
        .unwrap();
    assert_eq!(first.order.status, OrderStatus::Placed);
    assert_eq!(first.order.total_cents, 2 * 3_999 + 3 * 1_250);
    assert_eq!(first.items.len(), 2);
    assert_eq!(db.get_product(book.id).await.unwrap().stock, 8);
    assert_eq!(db.get_product(trowel.id).await.unwrap().stock, 97);
    assert_eq!(db.get_order(first.order.id).await.unwrap(), first);

    let second = db
        .place_order(order(&ada, vec![line(&book2, 1)]))
        .await
        .unwrap();
    let history = db.purchase_history(ada.id).await.unwrap();
    let skus: Vec<_> = history.iter().map(|p| p.sku.as_str()).collect();
    assert_eq!(skus, ["BK-002", "BK-001", "GD-001"]);
    assert_eq!(history[1].unit_price_cents, 3_999);

    let before = db.statements_executed();
    let orders = db.orders_of_user(ada.id).await.unwrap();
    assert_eq!(
        db.statements_executed() - before,
        2,
        "orders, then all items in one batch"
    );
    assert_eq!(orders, vec![second.clone(), first.clone()]);

    // Short stock is a conflict and nothing is written.
    let err = db
        .place_order(order(&ada, vec![line(&trowel, 1), line(&can, 3)]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { entity: "product", field, .. } if field == "stock"),
        "{err:?}"
    );
    assert_eq!(db.get_product(trowel.id).await.unwrap().stock, 97);
    assert_eq!(db.orders_of_user(ada.id).await.unwrap().len(), 2);
    let dup = db
        .place_order(order(&ada, vec![line(&trowel, 1), line(&trowel, 1)]))
        .await;
    assert!(matches!(
        dup,
        Err(Error::Validation { field, .. }) if field == "lines"
    ));

    // Cancelling returns stock and drops the order from history and popularity.
    let paid = db
        .set_order_status(second.order.id, OrderStatus::Paid)
        .await
        .unwrap();
    assert_eq!(paid.status, OrderStatus::Paid);
    let cancelled = db
        .set_order_status(second.order.id, OrderStatus::Cancelled)
        .await
        .unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(db.get_product(book2.id).await.unwrap().stock, 5);
    assert_eq!(db.purchase_history(ada.id).await.unwrap().len(), 2);
    assert!(matches!(
        db.set_order_status(second.order.id, OrderStatus::Paid)
            .await,
        Err(Error::Conflict { entity: "order", field, .. }) if field == "status"
    ));
    let restocked = db.restock(can.id, 8).await.unwrap();
    assert_eq!(restocked.stock, 10);

    let popular = db.product_popularity(10).await.unwrap();
    assert_eq!(popular[0].sku, "GD-001");
    assert_eq!(
        (popular[0].units_sold, popular[0].orders, popular[0].buyers),
        (3, 1, 1)
    );
    assert_eq!(popular[0].revenue_cents, 3 * 1_250);
    let book2_pop = popular.iter().find(|p| p.sku == "BK-002").unwrap();
    assert_eq!((book2_pop.units_sold, book2_pop.revenue_cents), (0, 0));
    let garden = db.products(Some("garden")).await.unwrap();
    assert_eq!(garden.len(), 2);
    assert_eq!(db.products(None).await.unwrap().len(), 4);
}

/// Concurrent cancels of one order return its stock once: only the call that changes the
/// status restocks, the others see it already cancelled.
pub async fn case_concurrent_cancels_restock_once<R>(db: &R)
where
    R: UserRepository + LocationRepository + ProductRepository + OrderRepository + ?Sized,
{
    let world = seed_world(db).await;
    let ada = user_in(db, world.city("Berlin"), "ada", 50.0).await;
    let book = &world.products[0];
    let trowel = &world.products[2];
    for round in 0..5 {
        let placed = db
            .place_order(order(&ada, vec![line(book, 3), line(trowel, 7)]))
            .await
            .unwrap();
        let cancels = (0..8).map(|_| db.set_order_status(placed.order.id, OrderStatus::Cancelled));
        for result in futures::future::join_all(cancels).await {
            assert_eq!(result.unwrap().status, OrderStatus::Cancelled);
        }
        assert_eq!(
            db.get_product(book.id).await.unwrap().stock,
            10,
            "round {round}"
        );
        assert_eq!(db.get_product(trowel.id).await.unwrap().stock, 100);
    }
}

/// Concurrent orders for the same products, their lines in opposite orders, all succeed:
/// stock is reserved in one global order (by product id), so they cannot deadlock.
pub async fn case_concurrent_orders_in_opposite_line_order<R>(db: &R)
where
    R: UserRepository + LocationRepository + ProductRepository + OrderRepository + ?Sized,
{
    let world = seed_world(db).await;
    let ada = user_in(db, world.city("Berlin"), "ada", 50.0).await;
    let products = &world.products;
    for p in products {
        db.restock(p.id, 1_000).await.unwrap();
    }
    let orders = (0..24).map(|i| {
        let mut lines: Vec<OrderLine> = products.iter().map(|p| line(p, 1)).collect();
        if i % 2 == 1 {
            lines.reverse();
        }
        db.place_order(order(&ada, lines))
    });
    for result in futures::future::join_all(orders).await {
        assert_eq!(result.unwrap().items.len(), products.len());
    }
    for p in products {
        assert_eq!(
            db.get_product(p.id).await.unwrap().stock,
            p.stock + 1_000 - 24
        );
    }
}

/// A failure inside an order inside a unit of work rolls back only the order, including the
/// stock its earlier lines had already reserved.
pub async fn case_order_rolls_back_on_failure(db: &dyn Database) {
    let world = seed_world(db).await;
    let uow = db.begin().await.unwrap();
    let ada = uow
        .create_user(NewUser::new("ada@example.org", "ada"))
        .await
        .unwrap();
    // Stock is reserved line by line in product-id order, so with the short product last
    // every other line is reserved before the shortage shows.
    let mut by_id = world.products.clone();
    by_id.sort_by_key(|p| p.id);
    let (short, reserved) = by_id.split_last().unwrap();
    let mut lines: Vec<OrderLine> = reserved.iter().map(|p| line(p, 1)).collect();
    lines.insert(0, line(short, short.stock + 1));
    let before = db.statements_executed();
    let err = uow.place_order(order(&ada, lines)).await.unwrap_err();
    match &err {
        Error::Conflict {
            entity: "product",
            field,
            message,
        } if field == "stock" => assert!(message.contains(&short.sku), "{message}"),
        other => panic!("expected a stock conflict, got {other:?}"),
    }
    assert!(
        db.statements_executed() - before > reserved.len() as u64,
        "the earlier lines were reserved (one UPDATE each) before the short one failed"
    );
    uow.place_order(order(&ada, vec![line(short, short.stock)]))
        .await
        .unwrap();
    uow.commit().await.unwrap();
    for p in reserved {
        assert_eq!(
            db.get_product(p.id).await.unwrap().stock,
            p.stock,
            "{} was reserved by the failed order and must be back",
            p.sku
        );
    }
    assert_eq!(db.get_product(short.id).await.unwrap().stock, 0);
    assert_eq!(db.orders_of_user(ada.id).await.unwrap().len(), 1);
}

/// Distribution, cohorts and high-value users.
pub async fn case_analytics<R>(db: &R)
where
    R: UserRepository
        + LocationRepository
        + ProductRepository
        + OrderRepository
        + AnalyticsRepository
        + ?Sized,
{
    let world = seed_world(db).await;
    let jan = Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).unwrap();
    let feb = Utc.with_ymd_and_hms(2024, 2, 3, 23, 59, 59).unwrap();
    let recent = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
    let mut made = Vec::new();
    for (name, city, created, active, verified, score) in [
        ("aaa", "Berlin", jan, recent, true, 90.0),
        ("bbb", "Munich", jan, jan, false, 30.0),
        ("ccc", "Paris", feb, recent, true, 60.0),
        ("ddd", "Tokyo", feb, feb, true, 20.0),
        ("eee", "Berlin", feb, feb, false, 10.0),
    ] {
        let address = db
            .create_address(NewAddress {
                street: format!("{name} road"),
                postal_code: "1".into(),
                city_id: world.city(city).id,
            })
            .await
            .unwrap();
        let mut u = NewUser::new(format!("{name}@example.org"), name);
        u.address_id = Some(address.id);
        u.created_at = Some(created);
        u.last_active_at = Some(active);
        u.is_verified = verified;
        u.profile_score = score;
        made.push(db.create_user(u).await.unwrap());
    }
    let dist = db.user_distribution().await.unwrap();
    assert_eq!(dist[0].iso_code, "DE");
    assert_eq!(dist[0].users, 3);
    assert!((dist[0].share - 0.6).abs() < 1e-9);
    assert_eq!(dist.iter().map(|d| d.users).sum::<u64>(), 5);

    let [book, _, trowel, _] = [0, 1, 2, 3].map(|i| world.products[i].clone());
    db.place_order(order(&made[2], vec![line(&book, 2)]))
        .await
        .unwrap();
    db.place_order(order(&made[0], vec![line(&trowel, 1)]))
        .await
        .unwrap();
    db.place_order(order(&made[0], vec![line(&trowel, 1)]))
        .await
        .unwrap();

    let cohorts = db
        .registration_cohorts(Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap())
        .await
        .unwrap();
    assert_eq!(cohorts.len(), 2);
    assert_eq!(cohorts[0].month, "2024-01");
    assert_eq!((cohorts[0].users, cohorts[0].orders), (2, 2));
    assert!((cohorts[0].verified_share - 0.5).abs() < 1e-9);
    assert!((cohorts[0].active_share - 0.5).abs() < 1e-9);
    assert!((cohorts[0].avg_profile_score - 60.0).abs() < 1e-9);
    assert_eq!(cohorts[1].month, "2024-02");
    assert_eq!((cohorts[1].users, cohorts[1].orders), (3, 1));
    assert!((cohorts[1].verified_share - 2.0 / 3.0).abs() < 1e-9);

    let spenders = db.top_spenders(0, 10).await.unwrap();
    let view: Vec<_> = spenders
        .iter()
        .map(|s| (s.username.as_str(), s.orders, s.total_spent_cents))
        .collect();
    assert_eq!(view, [("ccc", 1, 7_998), ("aaa", 2, 2_500)]);
    assert_eq!(db.top_spenders(5_000, 10).await.unwrap().len(), 1);
    let profiles = db.top_profiles(50.0, 10).await.unwrap();
    let view: Vec<_> = profiles
        .iter()
        .map(|s| (s.username.as_str(), s.total_spent_cents))
        .collect();
    assert_eq!(view, [("aaa", 2_500), ("ccc", 7_998)]);
}

/// SQL is parameterised: hostile strings are stored and read back literally.
pub async fn case_injection_strings_stored_literally<R>(db: &R)
where
    R: UserRepository + LocationRepository + ProductRepository + ?Sized,
{
    let hostile = [
        "Robert'); DROP TABLE users;--",
        "' OR '1'='1",
        "\"; DELETE FROM countries; --",
        "$1 ? :name @p0 \\ %",
    ];
    let country = db
        .create_country(NewCountry {
            name: hostile[0].into(),
            iso_code: "NZ".into(),
            population: 5_000_000,
            gdp_per_capita_cents: 1,
        })
        .await
        .unwrap();
    assert_eq!(country.name, hostile[0]);
    for (i, name) in hostile.iter().enumerate() {
        let city = db
            .create_city(NewCity {
                name: (*name).into(),
                region: (*name).into(),
                country_code: "NZ".into(),
            })
            .await
            .unwrap();
        assert_eq!(city.name, *name);
        assert_eq!(db.find_city(name, "NZ").await.unwrap(), Some(city.clone()));
        let (user, address) = db
            .create_user_with_address(
                NewAddress {
                    street: (*name).into(),
                    postal_code: "1".into(),
                    city_id: city.id,
                },
                NewUser::new(format!("o'brien{i}@example.org"), format!("user{i}")),
            )
            .await
            .unwrap();
        assert_eq!(address.street, *name);
        assert_eq!(user.email, format!("o'brien{i}@example.org"));
        let in_city = db.users_in_city(name).await.unwrap();
        assert_eq!(in_city, vec![user]);
        let product = db
            .create_product(NewProduct {
                sku: format!("X-{i}"),
                name: (*name).into(),
                category: (*name).into(),
                price_cents: 1,
                stock: 1,
            })
            .await
            .unwrap();
        assert_eq!(db.products(Some(name)).await.unwrap(), vec![product]);
    }
    assert_eq!(
        db.users_in_country(hostile[0]).await.unwrap().len(),
        hostile.len()
    );
    assert!(db.users_in_country("' OR '1'='1").await.unwrap().is_empty());
    assert_eq!(db.user_stats().await.unwrap().count, hostile.len() as u64);
    assert_eq!(db.countries_with_cities().await.unwrap().len(), 1);
}

/// Bulk inserts are split into statements under the bind-parameter limit (what they commit
/// is checked by the user-repository suite's `case_bulk_insert`).
pub async fn case_bulk_insert_splits_statements(db: &dyn Database) {
    let n = BULK_USERS;
    let before = db.statements_executed();
    assert_eq!(
        db.create_users(bulk_users("bulk", n)).await.unwrap(),
        n as u64
    );
    assert!(
        db.statements_executed() - before >= 2,
        "split under the bind limit"
    );
    assert_eq!(db.user_stats().await.unwrap().count, n as u64);
}

/// Outbox: claim with a lease, retry after it expires, mark sent, count the backlog.
pub async fn case_outbox(db: &dyn OutboxRepository) {
    assert_eq!(db.count_pending().await.unwrap(), 0);
    assert!(db.oldest_pending().await.unwrap().is_none());
    let mut ids = Vec::new();
    for i in 0..3 {
        let m = db
            .enqueue("user.registered", json!({ "n": i, "name": "O'Brien" }))
            .await
            .unwrap();
        assert_eq!((m.attempts, m.sent_at), (0, None));
        ids.push(m.id);
    }
    assert_eq!(db.count_pending().await.unwrap(), 3);
    let oldest = db.oldest_pending().await.unwrap().unwrap();
    assert_eq!(
        oldest.id, ids[0],
        "the first enqueued is the oldest pending"
    );
    let lease = Duration::from_secs(300);
    let first = db.claim_pending(2, lease).await.unwrap();
    assert_eq!(first.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..2]);
    assert!(first.iter().all(|m| m.attempts == 1));
    assert_eq!(first[1].payload, json!({ "n": 1, "name": "O'Brien" }));
    let second = db.claim_pending(10, lease).await.unwrap();
    assert_eq!(second.iter().map(|m| m.id).collect::<Vec<_>>(), ids[2..]);
    assert!(db.claim_pending(10, lease).await.unwrap().is_empty());
    assert_eq!(
        db.count_pending().await.unwrap(),
        3,
        "claimed messages are still pending until sent"
    );
    assert_eq!(db.mark_sent(&ids[..2]).await.unwrap(), 2);
    assert_eq!(db.mark_sent(&ids[..2]).await.unwrap(), 0, "already sent");
    assert_eq!(db.count_pending().await.unwrap(), 1);
    assert_eq!(
        db.oldest_pending().await.unwrap().map(|m| m.id),
        Some(ids[2]),
        "claimed but unsent still counts; sent ones do not"
    );

    // A zero lease expires at once, so an unsent message is claimed again.
    let third = db.enqueue("order.placed", json!([1, 2, 3])).await.unwrap();
    let retried = db.claim_pending(10, Duration::ZERO).await.unwrap();
    assert_eq!(retried.iter().map(|m| m.id).collect::<Vec<_>>(), [third.id]);
    let retried = db.claim_pending(10, Duration::ZERO).await.unwrap();
    assert_eq!(retried[0].attempts, 2);
    assert_eq!(db.mark_sent(&[ids[2], third.id]).await.unwrap(), 2);
    assert!(db
        .claim_pending(10, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(db.count_pending().await.unwrap(), 0);

    // Purging: sent messages older than the retention go, unsent ones never do.
    let unsent = db.enqueue("user.registered", json!({})).await.unwrap();
    assert_eq!(db.count_outbox_rows().await.unwrap(), 5);
    assert_eq!(db.purge_sent(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(db.count_outbox_rows().await.unwrap(), 5);
    assert_eq!(db.purge_sent(Duration::ZERO).await.unwrap(), 4);
    assert_eq!(db.count_outbox_rows().await.unwrap(), 1);
    assert_eq!(db.count_pending().await.unwrap(), 1);
    assert_eq!(db.mark_sent(&[unsent.id]).await.unwrap(), 1);
    assert_eq!(db.purge_sent(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(db.count_outbox_rows().await.unwrap(), 0);
}

/// Inside a unit of work the outbox count sees the unit's own uncommitted messages, and a
/// rollback takes them back out.
pub async fn case_outbox_in_a_unit_of_work(db: &dyn Database) {
    assert_eq!(db.count_pending().await.unwrap(), 0);
    let uow = db.begin().await.unwrap();
    uow.enqueue("user.registered", json!({})).await.unwrap();
    assert_eq!(uow.count_pending().await.unwrap(), 1);
    uow.rollback().await.unwrap();
    assert_eq!(db.count_pending().await.unwrap(), 0);
}

/// Money stays integral: a price beyond `f64`'s exact integers round-trips.
pub async fn case_money_stays_integral(products: &dyn ProductRepository) {
    let product = products
        .create_product(NewProduct {
            sku: "BIG".into(),
            name: "Expensive".into(),
            category: "luxury".into(),
            price_cents: 9_007_199_254_740_993, // not representable as f64
            stock: 1,
        })
        .await
        .unwrap();
    assert_eq!(
        products.get_product(product.id).await.unwrap().price_cents,
        9_007_199_254_740_993
    );
}
