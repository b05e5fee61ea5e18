//! The statement behind [`crate::AnalyticsRepository::customer_rfm`]: one aggregate over the
//! orders, grouped in the database, streamed to the caller customer by customer.
//!
//! Three steps in one statement:
//!
//! 1. `purchases`: purchases (paid or shipped orders) up to the calibration end, with the UTC
//!    day of each;
//! 2. `dated`: each purchase with its customer's first purchase day (a window aggregate over the
//!    customer's purchases);
//! 3. per customer: first and last day, the number of distinct days (several orders on one day
//!    are one purchase, as in lifetimes), and the spend of every day but the first, in user-id
//!    order.
//!
//! It needs one sort of the purchases by customer, which the database spills to disk as it
//! needs; only one row per customer leaves it. Weeks and the mean are computed from that row
//! ([`crate::customer_summary::CustomerRfmRow::into_rfm`]).
//!
//! On PostgreSQL the purchases are read in a subquery fenced with `OFFSET 0`: otherwise the
//! planner may read them in customer order through `orders_user_idx` to skip the sort, which
//! fetches the table in random order, one page per order — on 10,000,000 orders that was 62 s
//! against 11 s for a sequential scan and an external sort.

use crate::model::OrderStatus;
use crate::repository::Backend;

/// Rows the statement may run ahead of the caller before it waits for them to be taken.
pub(crate) const ROWS_IN_FLIGHT: usize = 1_024;

/// `'paid', 'shipped'`: the stored spelling of every status that is a purchase.
fn purchase_statuses() -> String {
    OrderStatus::ALL
        .iter()
        .filter(|s| s.is_purchase())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statement for `backend`; `$1` is the calibration end (a date, inclusive).
pub(crate) fn statement(backend: Backend) -> String {
    // The UTC day of an order, and "on or before the calibration end": PostgreSQL compares
    // the timestamp with the next day's midnight; SQLite stores RFC 3339 text in UTC, whose
    // first ten characters are the day.
    let (day, up_to_end) = match backend {
        Backend::Sqlite => (
            "substr(created_at, 1, 10)",
            "substr(created_at, 1, 10) <= $1",
        ),
        Backend::Postgres => (
            "CAST(created_at AT TIME ZONE 'UTC' AS DATE)",
            "created_at < CAST(CAST($1 AS DATE) + 1 AS TIMESTAMP) AT TIME ZONE 'UTC'",
        ),
    };
    let fence = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " OFFSET 0",
    };
    let statuses = purchase_statuses();
    format!(
        "SELECT user_id, MIN(day) AS first_purchase, MAX(day) AS last_purchase, \
           CAST(COUNT(DISTINCT day) AS BIGINT) AS purchase_days, \
           CAST(COALESCE(SUM(CASE WHEN day > first_day THEN total_cents ELSE 0 END), 0) \
             AS BIGINT) AS repeat_spend_cents \
         FROM ( \
           SELECT user_id, day, total_cents, \
             MIN(day) OVER (PARTITION BY user_id) AS first_day \
           FROM ( \
             SELECT user_id, {day} AS day, total_cents \
             FROM orders \
             WHERE status IN ({statuses}) AND {up_to_end}{fence}) AS purchases) AS dated \
         GROUP BY user_id ORDER BY user_id"
    )
}

/// The `customer_rfm` method of `AnalyticsRepository` for `SqlStore<$db>`: runs
/// [`statement`] on the store's connection (the pool's, or the unit of work's) and forwards
/// the rows through a bounded channel, so at most [`ROWS_IN_FLIGHT`] customers are held
/// whatever the number of orders and customers. The channel is what lets the returned stream
/// own the future that borrows the connection.
macro_rules! customer_rfm_method {
    ($db:ty) => {
        fn customer_rfm(
            &self,
            calibration_end: ::chrono::NaiveDate,
        ) -> ::futures::stream::BoxStream<'_, $crate::error::Result<$crate::CustomerRfm>> {
            use ::futures::{FutureExt, SinkExt, StreamExt, TryStreamExt};
            use $crate::customer_summary::{check_calibration_end, CustomerRfmRow};
            use $crate::sql::customer_summary::{statement, ROWS_IN_FLIGHT};
            use $crate::store::SqlDriver;

            let (mut tx, rx) = ::futures::channel::mpsc::channel(ROWS_IN_FLIGHT);
            let backend = self.backend_name();
            let driver = async move {
                let outcome: $crate::error::Result<()> = async {
                    check_calibration_end(calibration_end)?;
                    let sql = statement(<$db as SqlDriver>::DIALECT.backend);
                    let mut conn = self.conn().await?;
                    let mut rows = ::sqlx::query_as::<$db, CustomerRfmRow>(&sql)
                        .bind(calibration_end)
                        .fetch(conn.exec());
                    while let Some(row) = rows.try_next().await.map_err(|e| self.err(e))? {
                        let rfm = row.into_rfm(calibration_end, backend)?;
                        if tx.send(Ok(rfm)).await.is_err() {
                            // The stream was dropped: nobody wants the rest.
                            return Ok(());
                        }
                    }
                    Ok(())
                }
                .await;
                if let Err(e) = outcome {
                    let _ = tx.send(Err(e)).await;
                }
            };
            // The driver yields nothing; it runs whenever the stream is polled, and ends the
            // channel (dropping its sender) when the statement is done.
            let driver = driver
                .into_stream()
                .filter_map(|()| ::std::future::ready(None));
            ::futures::stream::select(rx, driver).boxed()
        }
    };
}

pub(crate) use customer_rfm_method;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paid_and_shipped_orders_are_purchases() {
        assert_eq!(purchase_statuses(), "'paid', 'shipped'");
        for backend in [Backend::Sqlite, Backend::Postgres] {
            assert!(statement(backend).contains("status IN ('paid', 'shipped')"));
        }
    }
}
