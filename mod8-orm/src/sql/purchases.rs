//! The statements behind [`crate::AnalyticsRepository::customer_histories`] and
//! [`crate::AnalyticsRepository::co_purchase_counts`].
//!
//! Both exclude cancelled orders, as [`crate::OrderRepository::purchase_history`] does.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Purchase, User};
use crate::purchases::{CoPurchase, ProductBuyers, ProductDayLines};
use crate::repository::Backend;

/// Rows the history statement may run ahead of the caller before it waits for them to be
/// taken.
pub(crate) const HISTORIES_IN_FLIGHT: usize = 256;

/// Every user (left-joined to their purchases, so users without any come too), in user-id
/// order, each user's lines newest first as in `purchase_history`.
pub(crate) const HISTORIES: &str = "SELECT u.id, u.email, u.username, u.address_id, \
       u.profile_score, u.is_verified, u.created_at, u.last_active_at, \
       h.order_id, h.ordered_at, h.product_id, h.sku, h.name, h.category, h.quantity, \
       h.unit_price_cents \
     FROM users u LEFT JOIN ( \
       SELECT o.user_id, o.id AS order_id, o.created_at AS ordered_at, p.id AS product_id, \
         p.sku, p.name, c.name AS category, oi.quantity, oi.unit_price_cents \
       FROM orders o \
       JOIN order_items oi ON oi.order_id = o.id \
       JOIN products p ON p.id = oi.product_id \
       JOIN categories c ON c.id = p.category_id \
       WHERE o.status <> 'cancelled') h ON h.user_id = u.id \
     ORDER BY u.id, h.ordered_at DESC, h.order_id, h.sku";

/// The co-occurrence aggregate: the distinct (user, product) pairs joined with themselves on
/// the user, counted per product pair. The diagonal (`product_a = product_b`) is each product's
/// distinct buyers.
pub(crate) const CO_PURCHASES: &str = "WITH bought AS ( \
       SELECT DISTINCT o.user_id, oi.product_id \
       FROM orders o JOIN order_items oi ON oi.order_id = o.id \
       WHERE o.status <> 'cancelled') \
     SELECT a.product_id AS product_a, b.product_id AS product_b, \
       CAST(COUNT(*) AS BIGINT) AS buyers \
     FROM bought a JOIN bought b ON b.user_id = a.user_id AND a.product_id <= b.product_id \
     GROUP BY a.product_id, b.product_id \
     ORDER BY a.product_id, b.product_id";

/// Order lines per product and UTC day on `backend`.
pub(crate) fn lines_by_day(backend: Backend) -> String {
    let day = match backend {
        Backend::Sqlite => "substr(o.created_at, 1, 10)",
        Backend::Postgres => "CAST(o.created_at AT TIME ZONE 'UTC' AS DATE)",
    };
    format!(
        "SELECT oi.product_id, {day} AS day, CAST(COUNT(*) AS BIGINT) AS lines \
         FROM orders o JOIN order_items oi ON oi.order_id = o.id \
         WHERE o.status <> 'cancelled' \
         GROUP BY oi.product_id, {day} \
         ORDER BY oi.product_id, day"
    )
}

/// One row of [`HISTORIES`]: the user, and one purchase unless they have none.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct HistoryRow {
    #[sqlx(flatten)]
    pub(crate) user: User,
    pub(crate) order_id: Option<Uuid>,
    pub(crate) ordered_at: Option<DateTime<Utc>>,
    pub(crate) product_id: Option<Uuid>,
    pub(crate) sku: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) category: Option<String>,
    pub(crate) quantity: Option<i64>,
    pub(crate) unit_price_cents: Option<i64>,
}

impl HistoryRow {
    /// The user and the purchase of this row, if it has one.
    pub(crate) fn split(self) -> (User, Option<Purchase>) {
        let purchase = match (
            self.order_id,
            self.ordered_at,
            self.product_id,
            self.sku,
            self.name,
            self.category,
            self.quantity,
            self.unit_price_cents,
        ) {
            (
                Some(order_id),
                Some(ordered_at),
                Some(product_id),
                Some(sku),
                Some(name),
                Some(category),
                Some(quantity),
                Some(unit_price_cents),
            ) => Some(Purchase {
                order_id,
                ordered_at,
                product_id,
                sku,
                name,
                category,
                quantity,
                unit_price_cents,
            }),
            _ => None,
        };
        (self.user, purchase)
    }
}

/// One row of [`CO_PURCHASES`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CoPurchaseRow {
    pub(crate) product_a: Uuid,
    pub(crate) product_b: Uuid,
    pub(crate) buyers: i64,
}

/// One row of [`lines_by_day`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DayLinesRow {
    pub(crate) product_id: Uuid,
    pub(crate) day: NaiveDate,
    pub(crate) lines: i64,
}

fn count(n: i64, backend: &'static str) -> Result<u64> {
    u64::try_from(n).map_err(|_| Error::backend(backend, format!("negative count {n}")))
}

/// The rows of both statements as [`crate::CoPurchaseCounts`]: the diagonal becomes the buyers
/// per product, the rest the pairs (ordered by id whatever order the database compares ids in).
pub(crate) fn co_purchase_counts(
    pairs: Vec<CoPurchaseRow>,
    days: Vec<DayLinesRow>,
    backend: &'static str,
) -> Result<crate::CoPurchaseCounts> {
    let mut out = crate::CoPurchaseCounts::default();
    for row in pairs {
        let buyers = count(row.buyers, backend)?;
        if row.product_a == row.product_b {
            out.buyers.push(ProductBuyers {
                product_id: row.product_a,
                buyers,
            });
        } else {
            let (product_a, product_b) = if row.product_a < row.product_b {
                (row.product_a, row.product_b)
            } else {
                (row.product_b, row.product_a)
            };
            out.pairs.push(CoPurchase {
                product_a,
                product_b,
                buyers,
            });
        }
    }
    out.buyers.sort_unstable_by_key(|b| b.product_id);
    out.pairs
        .sort_unstable_by_key(|p| (p.product_a, p.product_b));
    for row in days {
        out.lines_by_day.push(ProductDayLines {
            product_id: row.product_id,
            day: row.day,
            lines: count(row.lines, backend)?,
        });
    }
    out.lines_by_day
        .sort_unstable_by_key(|d| (d.product_id, d.day));
    Ok(out)
}

/// The `customer_histories` method of `AnalyticsRepository` for `SqlStore<$db>` (an `async fn`
/// such as `co_purchase_counts` cannot come from a macro inside an `#[async_trait]` impl). The
/// histories are streamed as `customer_rfm` is: the statement runs on the
/// store's connection and its rows, grouped per user, go through a bounded channel, so at most
/// [`HISTORIES_IN_FLIGHT`] users (and one user's lines) are held at a time.
macro_rules! purchases_methods {
    ($db:ty) => {
        fn customer_histories(
            &self,
        ) -> ::futures::stream::BoxStream<'_, $crate::error::Result<$crate::CustomerHistory>> {
            use ::futures::{FutureExt, SinkExt, StreamExt, TryStreamExt};
            use $crate::sql::purchases::{HistoryRow, HISTORIES, HISTORIES_IN_FLIGHT};
            use $crate::CustomerHistory;

            let (mut tx, rx) = ::futures::channel::mpsc::channel(HISTORIES_IN_FLIGHT);
            let driver = async move {
                let outcome: $crate::error::Result<()> = async {
                    let mut conn = self.conn().await?;
                    let mut rows =
                        ::sqlx::query_as::<$db, HistoryRow>(HISTORIES).fetch(conn.exec());
                    let mut current: Option<CustomerHistory> = None;
                    while let Some(row) = rows.try_next().await.map_err(|e| self.err(e))? {
                        let (user, purchase) = row.split();
                        let same = current.as_ref().is_some_and(|c| c.user.id == user.id);
                        if !same {
                            let next = CustomerHistory {
                                user,
                                purchases: Vec::new(),
                            };
                            if let Some(done) = current.replace(next) {
                                if tx.send(Ok(done)).await.is_err() {
                                    // The stream was dropped: nobody wants the rest.
                                    return Ok(());
                                }
                            }
                        }
                        if let (Some(c), Some(p)) = (current.as_mut(), purchase) {
                            c.purchases.push(p);
                        }
                    }
                    if let Some(done) = current {
                        let _ = tx.send(Ok(done)).await;
                    }
                    Ok(())
                }
                .await;
                if let Err(e) = outcome {
                    let _ = tx.send(Err(e)).await;
                }
            };
            let driver = driver
                .into_stream()
                .filter_map(|()| ::std::future::ready(None));
            ::futures::stream::select(rx, driver).boxed()
        }
    };
}

pub(crate) use purchases_methods;
