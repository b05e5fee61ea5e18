//! Conformance cases for [`AnalyticsRepository::customer_rfm`]: the database's summary
//! against one computed here, order by order, from the same inserted orders (a plain
//! reading of lifetimes' `summary_data_from_transaction_data`, with no code in common with
//! the statement or with any model crate).
#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use futures::TryStreamExt;
use uuid::Uuid;

use crate::*;

/// One order as the cases inserted it.
#[derive(Debug, Clone, Copy)]
struct Placed {
    user: Uuid,
    at: DateTime<Utc>,
    status: OrderStatus,
    total_cents: i64,
}

/// The summary one customer should get, by the book:
///
/// - keep paid and shipped orders whose UTC day is on or before `end`;
/// - sum them per (customer, day);
/// - x = days − 1, tₓ = (last day − first day) / 7, T = (end − first day) / 7 in days;
/// - m = the mean of the per-day sums of every day but the first (0 without one).
fn reference(orders: &[Placed], end: NaiveDate) -> BTreeMap<Uuid, CustomerRfm> {
    let mut days: BTreeMap<Uuid, BTreeMap<NaiveDate, i64>> = BTreeMap::new();
    for o in orders {
        let paid = matches!(o.status, OrderStatus::Paid | OrderStatus::Shipped);
        let day = o.at.date_naive();
        if paid && day <= end {
            *days.entry(o.user).or_default().entry(day).or_default() += o.total_cents;
        }
    }
    days.into_iter()
        .map(|(user, per_day)| {
            let first = *per_day.keys().next().unwrap();
            let last = *per_day.keys().next_back().unwrap();
            let repeat: Vec<i64> = per_day.values().skip(1).copied().collect();
            let repeat_spend_cents: i64 = repeat.iter().sum();
            let frequency = repeat.len() as u32;
            let rfm = CustomerRfm {
                user_id: user,
                first_purchase: first,
                last_purchase: last,
                frequency,
                recency: (last - first).num_days() as f64 / 7.0,
                t: (end - first).num_days() as f64 / 7.0,
                repeat_spend_cents,
                monetary_value_cents: if frequency == 0 {
                    0.0
                } else {
                    repeat_spend_cents as f64 / f64::from(frequency)
                },
            };
            (user, rfm)
        })
        .collect()
}

/// Everything the stream yields, checking it comes in user-id order.
async fn summaries<R: AnalyticsRepository + ?Sized>(db: &R, end: NaiveDate) -> Vec<CustomerRfm> {
    let got: Vec<CustomerRfm> = db.customer_rfm(end).try_collect().await.unwrap();
    assert!(
        got.windows(2).all(|w| w[0].user_id < w[1].user_id),
        "customers come once each, in user-id order"
    );
    // The id order is the order of the ids' text too (what a model crate sorts by).
    assert!(got
        .windows(2)
        .all(|w| w[0].user_id.to_string() < w[1].user_id.to_string()));
    got
}

/// Places one order of `lines` at `at`, then moves it to `status`.
async fn place<R>(
    db: &R,
    user: &User,
    lines: Vec<OrderLine>,
    at: DateTime<Utc>,
    status: OrderStatus,
) -> Placed
where
    R: OrderRepository + ?Sized,
{
    let order = db
        .place_order(NewOrder {
            user_id: user.id,
            lines,
            created_at: Some(at),
        })
        .await
        .unwrap();
    if status != OrderStatus::Placed {
        db.set_order_status(order.order.id, status).await.unwrap();
    }
    Placed {
        user: user.id,
        at,
        status,
        total_cents: order.order.total_cents,
    }
}

async fn product<R: ProductRepository + ?Sized>(db: &R, sku: &str, price_cents: i64) -> Product {
    db.create_product(NewProduct {
        sku: sku.into(),
        name: format!("product {sku}"),
        category: "rfm".into(),
        price_cents,
        stock: 1_000_000,
    })
    .await
    .unwrap()
}

async fn customer<R: UserRepository + ?Sized>(db: &R, name: &str) -> User {
    db.create_user(NewUser::new(format!("{name}@example.org"), name))
        .await
        .unwrap()
}

fn at(m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, m, d, h, min, s).unwrap()
}

fn day(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, m, d).unwrap()
}

/// Hand-computed customers: same-day orders merged, an order on the calibration end counted
/// and one a microsecond later not, cancelled and unpaid (`placed`) orders ignored, a
/// one-purchase customer, and customers with nothing that counts left out.
pub async fn case_customer_rfm<R>(db: &R)
where
    R: UserRepository + ProductRepository + OrderRepository + AnalyticsRepository + ?Sized,
{
    use OrderStatus::{Cancelled, Paid, Placed as Unpaid, Shipped};
    let end = day(3, 31);
    let p1 = product(db, "RFM-1", 1_000).await;
    let p2 = product(db, "RFM-2", 2_550).await;
    let one = |p: &Product, q: i64| {
        vec![OrderLine {
            product_id: p.id,
            quantity: q,
        }]
    };

    // Nothing on or before the end yet.
    assert!(summaries(db, end).await.is_empty());

    let mut orders = Vec::new();
    let alice = customer(db, "alice").await;
    for (lines, when, status) in [
        (one(&p1, 1), at(1, 1, 10, 0, 0), Paid), // 1 Jan: 1000 ...
        (one(&p2, 1), at(1, 1, 18, 30, 0), Shipped), // ... + 2550 the same day = 3550
        (one(&p1, 2), at(1, 15, 0, 0, 0), Paid), // 15 Jan: 2000
        (one(&p2, 1), at(1, 15, 23, 59, 59), Cancelled), // cancelled: ignored
        (one(&p2, 2), at(2, 12, 9, 0, 0), Shipped), // 12 Feb: 5100
        (one(&p1, 1), at(2, 20, 9, 0, 0), Unpaid), // not paid: ignored
        (
            one(&p1, 3),
            at(3, 31, 23, 59, 59) + Duration::microseconds(999_999),
            Paid,
        ), // 31 Mar: 3000
        (one(&p2, 4), at(4, 1, 0, 0, 0), Paid),  // after the end: ignored
    ] {
        orders.push(place(db, &alice, lines, when, status).await);
    }
    let bob = customer(db, "bob").await; // one purchase
    orders.push(place(db, &bob, one(&p1, 1), at(2, 1, 12, 0, 0), Paid).await);
    let carol = customer(db, "carol").await; // only cancelled and unpaid orders
    orders.push(place(db, &carol, one(&p1, 1), at(1, 3, 12, 0, 0), Cancelled).await);
    orders.push(place(db, &carol, one(&p2, 1), at(1, 4, 12, 0, 0), Unpaid).await);
    let dave = customer(db, "dave").await; // buys only after the end
    orders.push(place(db, &dave, one(&p1, 1), at(4, 2, 12, 0, 0), Paid).await);
    let erin = customer(db, "erin").await; // UTC day boundaries
    for (lines, when, status) in [
        (one(&p1, 1), at(1, 31, 23, 59, 59), Paid), // 31 Jan: 1000
        (one(&p2, 1), at(2, 1, 0, 0, 0), Paid),     // 1 Feb: 2550 ...
        (one(&p1, 2), at(2, 1, 23, 0, 0), Shipped), // ... + 2000 = 4550
    ] {
        orders.push(place(db, &erin, lines, when, status).await);
    }
    let _frank = customer(db, "frank").await; // no orders at all

    let got = summaries(db, end).await;
    let want = reference(&orders, end);
    assert_eq!(got.len(), 3, "alice, bob and erin: {got:?}");
    assert_eq!(got, want.values().cloned().collect::<Vec<_>>());

    // And by hand, so the reference is checked too.
    let by_id: BTreeMap<Uuid, &CustomerRfm> = got.iter().map(|c| (c.user_id, c)).collect();
    let a = by_id[&alice.id];
    assert_eq!((a.first_purchase, a.last_purchase), (day(1, 1), day(3, 31)));
    assert_eq!(a.frequency, 3);
    assert_eq!(a.recency, 90.0 / 7.0);
    assert_eq!(a.t, 90.0 / 7.0);
    assert_eq!(a.repeat_spend_cents, 2_000 + 5_100 + 3_000);
    assert_eq!(a.monetary_value_cents, 10_100.0 / 3.0);
    let b = by_id[&bob.id];
    assert_eq!(
        (
            b.frequency,
            b.recency,
            b.t,
            b.repeat_spend_cents,
            b.monetary_value_cents
        ),
        (0, 0.0, 59.0 / 7.0, 0, 0.0)
    );
    let e = by_id[&erin.id];
    assert_eq!(
        (
            e.first_purchase,
            e.frequency,
            e.recency,
            e.t,
            e.monetary_value_cents
        ),
        (day(1, 31), 1, 1.0 / 7.0, 60.0 / 7.0, 4_550.0)
    );
    assert!(!by_id.contains_key(&carol.id) && !by_id.contains_key(&dave.id));

    // An earlier calibration end: alice's later days drop out, T shrinks.
    let early = day(1, 15);
    let got = summaries(db, early).await;
    assert_eq!(
        got,
        reference(&orders, early).into_values().collect::<Vec<_>>()
    );
    let a = got.iter().find(|c| c.user_id == alice.id).unwrap();
    assert_eq!((a.frequency, a.recency, a.t), (1, 2.0, 2.0));
    assert_eq!(a.monetary_value_cents, 2_000.0);
    // On the first purchase day itself: x = 0, T = 0.
    let got = summaries(db, day(1, 1)).await;
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].frequency, got[0].recency, got[0].t), (0, 0.0, 0.0));

    // A later end counts what happened after the first one.
    let later = day(12, 31);
    assert_eq!(
        summaries(db, later).await,
        reference(&orders, later).into_values().collect::<Vec<_>>()
    );
}

/// A pseudo-random history (many customers, several orders a day, every status) against the
/// reference, at several calibration ends.
pub async fn case_customer_rfm_matches_the_reference<R>(db: &R)
where
    R: UserRepository + ProductRepository + OrderRepository + AnalyticsRepository + ?Sized,
{
    let products = [
        product(db, "RFM-A", 199).await,
        product(db, "RFM-B", 2_499).await,
        product(db, "RFM-C", 10_000).await,
    ];
    // A fixed linear congruential generator: the same history on every backend and run.
    let mut state: u64 = 0x5EED_2024;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let start = at(1, 1, 0, 0, 0);
    let mut orders = Vec::new();
    for c in 0..30 {
        let user = customer(db, &format!("random{c}")).await;
        for _ in 0..next(9) {
            // Within 120 days, at any second; a few on the same day as the previous one.
            let when =
                start + Duration::days(next(120) as i64) + Duration::seconds(next(86_400) as i64);
            let status = match next(10) {
                0 => OrderStatus::Cancelled,
                1 => OrderStatus::Placed,
                2..=5 => OrderStatus::Paid,
                _ => OrderStatus::Shipped,
            };
            let p = &products[next(3) as usize];
            let lines = vec![OrderLine {
                product_id: p.id,
                quantity: 1 + next(3) as i64,
            }];
            orders.push(place(db, &user, lines.clone(), when, status).await);
            if next(4) == 0 {
                // Another order the same day.
                let same_day = when.date_naive().and_hms_opt(23, 59, 59).unwrap().and_utc();
                orders.push(place(db, &user, lines, same_day, OrderStatus::Paid).await);
            }
        }
    }
    let customers: BTreeSet<Uuid> = orders.iter().map(|o| o.user).collect();
    assert!(customers.len() > 20, "most customers ordered something");
    for end in [day(1, 1), day(1, 20), day(2, 29), day(3, 15), day(5, 1)] {
        let got = summaries(db, end).await;
        let want: Vec<CustomerRfm> = reference(&orders, end).into_values().collect();
        assert_eq!(got, want, "calibration end {end}");
    }
}

/// Inside a unit of work the summary sees the unit's own orders; a stream dropped half-way
/// gives its connection back (the next call on a one-connection database does not wait);
/// an out-of-range calibration end is a validation error.
pub async fn case_customer_rfm_in_a_unit_of_work(db: &dyn Database) {
    let end = day(6, 30);
    let p = product(db, "RFM-U", 500).await;
    let mut users = Vec::new();
    for name in ["uu1", "uu2", "uu3"] {
        let user = customer(db, name).await;
        let lines = vec![OrderLine {
            product_id: p.id,
            quantity: 1,
        }];
        place(db, &user, lines, at(1, 2, 3, 4, 5), OrderStatus::Paid).await;
        users.push(user);
    }

    let uow = db.begin().await.unwrap();
    let lines = vec![OrderLine {
        product_id: p.id,
        quantity: 2,
    }];
    place(
        &*uow,
        &users[0],
        lines,
        at(2, 2, 0, 0, 0),
        OrderStatus::Shipped,
    )
    .await;
    let inside = summaries(&*uow, end).await;
    let u1 = inside.iter().find(|c| c.user_id == users[0].id).unwrap();
    assert_eq!((u1.frequency, u1.repeat_spend_cents), (1, 1_000));
    uow.rollback().await.unwrap();
    let outside = summaries(db, end).await;
    assert_eq!(outside.len(), 3);
    assert!(outside.iter().all(|c| c.frequency == 0));

    // Take one customer, drop the rest of the stream, carry on.
    let mut stream = db.customer_rfm(end);
    assert!(stream.try_next().await.unwrap().is_some());
    drop(stream);
    assert_eq!(db.user_stats().await.unwrap().count, 3);

    let far = NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap();
    let err = db.customer_rfm(far).try_next().await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation { field, .. } if field == "calibration_end"),
        "{err:?}"
    );
}
