//! The plain per-customer inputs every engine takes: activity counts, purchases and their
//! aggregates.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Counts of what a user did (over whatever window the caller tracks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityCounts {
    /// Sessions / logins.
    pub sessions: u32,
    /// Pages or screens viewed.
    pub page_views: u32,
    /// Clicks on products, links, banners.
    pub clicks: u32,
    /// Searches.
    pub searches: u32,
    /// Items added to the cart.
    pub cart_adds: u32,
    /// Reviews or ratings written.
    pub reviews: u32,
}

/// One purchase of one product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemPurchase {
    /// Product id (matches [`crate::CatalogItem::id`]).
    pub product_id: String,
    /// Amount paid.
    pub amount: f64,
    /// Day of the purchase.
    pub date: NaiveDate,
}

/// Aggregates of a purchase history: everything the value models need, in 40 bytes.
///
/// `count` is the number of distinct purchase *days* (several purchases on one day are one
/// purchase occasion, as in the RFM summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PurchaseStats {
    /// Distinct purchase days.
    pub count: u32,
    /// Sum of all amounts.
    pub total_amount: f64,
    /// Amount spent on the first purchase day.
    pub first_amount: f64,
    /// First purchase day.
    pub first: Option<NaiveDate>,
    /// Last purchase day.
    pub last: Option<NaiveDate>,
}

impl PurchaseStats {
    /// Aggregates purchases (any order). Non-finite or negative amounts count as 0.
    pub fn from_purchases(purchases: &[ItemPurchase]) -> Self {
        let mut days: Vec<(NaiveDate, f64)> = purchases
            .iter()
            .map(|p| {
                (
                    p.date,
                    if p.amount.is_finite() && p.amount > 0.0 {
                        p.amount
                    } else {
                        0.0
                    },
                )
            })
            .collect();
        days.sort_by_key(|d| d.0);
        let mut stats = PurchaseStats::default();
        let mut previous: Option<NaiveDate> = None;
        for (date, amount) in days {
            if previous != Some(date) {
                stats.count += 1;
            }
            if stats.first.is_none() || stats.first == Some(date) {
                stats.first = Some(date);
                stats.first_amount += amount;
            }
            stats.total_amount += amount;
            stats.last = Some(date);
            previous = Some(date);
        }
        stats
    }

    /// Average amount per purchase day (0 without purchases).
    pub fn average_amount(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_amount / self.count as f64
        }
    }
}

/// The compact per-user input of [`crate::AnalyticsEngine::profile`]: activity counts, last
/// activity day and purchase aggregates (`Copy`, no heap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerActivity {
    /// What the user did.
    pub activity: ActivityCounts,
    /// Last day the user was active in the product (purchases count as activity too).
    pub last_active: Option<NaiveDate>,
    /// Purchase aggregates.
    pub purchases: PurchaseStats,
}

impl CustomerActivity {
    /// Days since the last activity or purchase, whichever is later; `None` if neither exists.
    /// Dates after `as_of` count as 0 days.
    pub fn days_inactive(&self, as_of: NaiveDate) -> Option<u32> {
        let last = match (self.last_active, self.purchases.last) {
            (Some(a), Some(p)) => Some(a.max(p)),
            (a, p) => a.or(p),
        }?;
        Some(days_between(last, as_of))
    }
}

/// A customer with full purchase history: what the app typically has at hand.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerRecord {
    /// The user's id.
    pub user_id: String,
    /// Activity counts.
    pub activity: ActivityCounts,
    /// Last day active.
    pub last_active: Option<NaiveDate>,
    /// Purchases, any order.
    pub purchases: Vec<ItemPurchase>,
}

impl CustomerRecord {
    /// The compact aggregate the engines work on.
    pub fn summary(&self) -> CustomerActivity {
        CustomerActivity {
            activity: self.activity,
            last_active: self.last_active,
            purchases: PurchaseStats::from_purchases(&self.purchases),
        }
    }
}

/// Whole days from `from` to `to`, 0 when `from` is later.
pub(crate) fn days_between(from: NaiveDate, to: NaiveDate) -> u32 {
    use chrono::Datelike;
    let days = to.num_days_from_ce() as i64 - from.num_days_from_ce() as i64;
    days.clamp(0, u32::MAX as i64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, m, day).unwrap()
    }

    #[test]
    fn purchase_stats_merge_days() {
        let p = |day, amount| ItemPurchase {
            product_id: "x".into(),
            amount,
            date: d(1, day),
        };
        let s = PurchaseStats::from_purchases(&[p(10, 5.0), p(3, 2.0), p(3, 4.0), p(20, f64::NAN)]);
        assert_eq!(s.count, 3);
        assert_eq!(s.total_amount, 11.0);
        assert_eq!(s.first_amount, 6.0);
        assert_eq!((s.first, s.last), (Some(d(1, 3)), Some(d(1, 20))));
        assert_eq!(PurchaseStats::from_purchases(&[]).count, 0);
    }

    #[test]
    fn days_inactive_uses_latest_signal() {
        let mut u = CustomerActivity {
            last_active: Some(d(1, 1)),
            ..Default::default()
        };
        assert_eq!(u.days_inactive(d(1, 31)), Some(30));
        u.purchases.last = Some(d(1, 21));
        assert_eq!(u.days_inactive(d(1, 31)), Some(10));
        assert_eq!(u.days_inactive(d(1, 1)), Some(0));
        assert_eq!(CustomerActivity::default().days_inactive(d(1, 1)), None);
    }
}
