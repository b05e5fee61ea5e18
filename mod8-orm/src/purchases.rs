//! Purchases over the whole customer base, for reports and models that must see every
//! customer: [`crate::AnalyticsRepository::customer_histories`] (every user with their
//! purchases, streamed) and [`crate::AnalyticsRepository::co_purchase_counts`] (the counts an
//! item-to-item recommendation model is built from, aggregated in the database).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{Purchase, User};

/// One user with every product they bought, as
/// [`crate::AnalyticsRepository::customer_histories`] streams them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerHistory {
    /// The user.
    pub user: User,
    /// What they bought, as [`crate::OrderRepository::purchase_history`] returns it: one entry
    /// per order line, cancelled orders excluded, newest first. Empty for a user who never
    /// bought anything.
    pub purchases: Vec<Purchase>,
}

/// How many distinct customers bought one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductBuyers {
    /// The product.
    pub product_id: Uuid,
    /// Distinct users with at least one (not cancelled) order line of it.
    pub buyers: u64,
}

/// How many distinct customers bought both products of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoPurchase {
    /// One product of the pair (the smaller id).
    pub product_a: Uuid,
    /// The other product (the larger id).
    pub product_b: Uuid,
    /// Distinct users who bought both, in the same order or in different ones.
    pub buyers: u64,
}

/// How many order lines of one product were placed on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDayLines {
    /// The product.
    pub product_id: Uuid,
    /// The UTC calendar day of the orders.
    pub day: NaiveDate,
    /// Order lines of the product on that day (not units: a line of 3 counts once).
    pub lines: u64,
}

/// Co-purchase counts over every order line (cancelled orders excluded), as
/// [`crate::AnalyticsRepository::co_purchase_counts`] returns them: exactly what an
/// item-to-item collaborative-filtering model counts when it is given every customer's
/// purchase history, without loading the histories.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoPurchaseCounts {
    /// Distinct buyers of each product bought at least once, by product id.
    pub buyers: Vec<ProductBuyers>,
    /// Distinct buyers of each pair of different products bought by at least one same user,
    /// each unordered pair once (`product_a < product_b`), by `(product_a, product_b)`.
    pub pairs: Vec<CoPurchase>,
    /// Order lines per product and UTC day (what a trending score decays), by product and day.
    pub lines_by_day: Vec<ProductDayLines>,
}

impl CoPurchaseCounts {
    /// The statements [`crate::AnalyticsRepository::co_purchase_counts`] runs on `backend`,
    /// for `EXPLAIN` and capacity planning: the pair aggregate (whose diagonal gives the
    /// buyers per product) and the lines per product and day.
    pub fn statements(backend: crate::Backend) -> [String; 2] {
        [
            crate::sql::purchases::CO_PURCHASES.to_owned(),
            crate::sql::purchases::lines_by_day(backend),
        ]
    }
}
