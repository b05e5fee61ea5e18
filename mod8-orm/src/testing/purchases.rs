//! Conformance cases for [`AnalyticsRepository::customer_histories`] and
//! [`AnalyticsRepository::co_purchase_counts`]: both against what the per-user
//! [`OrderRepository::purchase_history`] gives for every user, counted here the plain way.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::TryStreamExt;
use uuid::Uuid;

use crate::*;

fn at(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, m, d, h, 0, 0).unwrap()
}

/// Users with several orders (two on one day, one cancelled, one line of two units), one user
/// without any order; returns the users.
async fn shop<R>(db: &R) -> Vec<User>
where
    R: UserRepository + ProductRepository + OrderRepository + ?Sized,
{
    let mut products = Vec::new();
    for (i, price) in [500, 1_250, 9_900, 300].into_iter().enumerate() {
        let p = db
            .create_product(NewProduct {
                sku: format!("CO-{i}"),
                name: format!("co product {i}"),
                category: if i % 2 == 0 { "even" } else { "odd" }.into(),
                price_cents: price,
                stock: 1_000,
            })
            .await
            .unwrap();
        products.push(p.id);
    }
    let mut users = Vec::new();
    for name in ["cora", "dan", "eve", "fay"] {
        users.push(
            db.create_user(NewUser::new(format!("{name}@example.org"), name))
                .await
                .unwrap(),
        );
    }
    let line = |i: usize, quantity: i64| OrderLine {
        product_id: products[i],
        quantity,
    };
    let orders: Vec<(usize, Vec<OrderLine>, DateTime<Utc>, bool)> = vec![
        (0, vec![line(0, 1), line(1, 2)], at(3, 1, 9), false),
        (0, vec![line(2, 1)], at(3, 1, 18), false),
        (0, vec![line(0, 1)], at(4, 2, 8), false),
        (1, vec![line(0, 1), line(2, 1)], at(3, 1, 10), false),
        (1, vec![line(3, 1)], at(5, 5, 5), true), // cancelled: never counted
        (2, vec![line(1, 1)], at(6, 7, 23), false),
        (2, vec![line(3, 1), line(0, 3)], at(6, 8, 0), false),
    ];
    for (user, lines, when, cancel) in orders {
        let placed = db
            .place_order(NewOrder {
                user_id: users[user].id,
                lines,
                created_at: Some(when),
            })
            .await
            .unwrap();
        if cancel {
            db.set_order_status(placed.order.id, OrderStatus::Cancelled)
                .await
                .unwrap();
        }
    }
    users
}

/// Every user comes once, in id order, with exactly their purchase history (users without
/// purchases included); a stream dropped half-way frees its connection.
pub async fn case_customer_histories<R>(db: &R)
where
    R: UserRepository + ProductRepository + OrderRepository + AnalyticsRepository + ?Sized,
{
    let users = shop(db).await;
    let got: Vec<CustomerHistory> = db.customer_histories().try_collect().await.unwrap();
    assert_eq!(got.len(), users.len(), "every user, once");
    assert!(
        got.windows(2).all(|w| w[0].user.id < w[1].user.id),
        "in user-id order"
    );
    for history in &got {
        let expected = db.purchase_history(history.user.id).await.unwrap();
        assert_eq!(history.purchases, expected, "{}", history.user.username);
        let stored = users.iter().find(|u| u.id == history.user.id).unwrap();
        assert_eq!(&history.user, stored);
    }
    let fay = got.iter().find(|h| h.user.username == "fay").unwrap();
    assert!(fay.purchases.is_empty(), "a user without orders comes too");
    let dan = got.iter().find(|h| h.user.username == "dan").unwrap();
    assert_eq!(dan.purchases.len(), 2, "the cancelled order is left out");

    // Taking one and dropping the stream gives the connection back.
    let mut stream = db.customer_histories();
    assert!(stream.try_next().await.unwrap().is_some());
    drop(stream);
    assert_eq!(db.user_stats().await.unwrap().count, users.len() as u64);

    // Empty after deleting everyone.
    for u in &users {
        db.delete_user(u.id).await.unwrap();
    }
    let none: Vec<CustomerHistory> = db.customer_histories().try_collect().await.unwrap();
    assert!(none.is_empty());
}

/// The counts equal those taken from every user's purchase history: distinct buyers per
/// product and per pair of products, order lines per product and UTC day.
pub async fn case_co_purchase_counts<R>(db: &R)
where
    R: UserRepository + ProductRepository + OrderRepository + AnalyticsRepository + ?Sized,
{
    let empty = db.co_purchase_counts().await.unwrap();
    assert_eq!(empty, CoPurchaseCounts::default());
    let users = shop(db).await;

    let mut buyers: BTreeMap<Uuid, u64> = BTreeMap::new();
    let mut pairs: BTreeMap<(Uuid, Uuid), u64> = BTreeMap::new();
    let mut days: BTreeMap<(Uuid, NaiveDate), u64> = BTreeMap::new();
    for user in &users {
        let history = db.purchase_history(user.id).await.unwrap();
        let bought: BTreeSet<Uuid> = history.iter().map(|p| p.product_id).collect();
        for &a in &bought {
            *buyers.entry(a).or_default() += 1;
            for &b in bought.range(a..).skip(1) {
                *pairs.entry((a, b)).or_default() += 1;
            }
        }
        for p in &history {
            *days
                .entry((p.product_id, p.ordered_at.date_naive()))
                .or_default() += 1;
        }
    }
    let expected = CoPurchaseCounts {
        buyers: buyers
            .into_iter()
            .map(|(product_id, buyers)| ProductBuyers { product_id, buyers })
            .collect(),
        pairs: pairs
            .into_iter()
            .map(|((product_a, product_b), buyers)| CoPurchase {
                product_a,
                product_b,
                buyers,
            })
            .collect(),
        lines_by_day: days
            .into_iter()
            .map(|((product_id, day), lines)| ProductDayLines {
                product_id,
                day,
                lines,
            })
            .collect(),
    };
    let got = db.co_purchase_counts().await.unwrap();
    assert_eq!(got, expected);
    // Hand-checked: product 0 was bought by cora, dan and eve; the cancelled line of product
    // 3 by dan is not a purchase, eve's is.
    assert_eq!(got.buyers.iter().map(|b| b.buyers).max(), Some(3));
    assert_eq!(got.buyers.len(), 4);
    assert!(got.pairs.iter().all(|p| p.product_a < p.product_b));
}
