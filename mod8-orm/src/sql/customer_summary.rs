//! The statement behind [`crate::AnalyticsRepository::customer_rfm`]: one aggregate over the
//! orders, grouped in the database, streamed to the caller customer by customer.
//!
//! Three steps in one statement:
//!
//! 1. `purchase_days`: purchases (paid or shipped orders) up to the calibration end, grouped
//!    per customer and UTC day with their `total_cents` summed — lifetimes' "one purchase per
//!    period";
//! 2. `numbered`: each customer's days numbered in time order (a window function), so the
//!    first day can be told apart;
//! 3. per customer: first and last day, number of days, and the spend of every day but the
//!    first, in user-id order.
//!
//! Only one row per customer leaves the database; weeks and the mean are computed from it
//! ([`crate::customer_summary::CustomerRfmRow::into_rfm`]).

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
    // The UTC day of an order, and "on or before the calibration end". PostgreSQL compares
    // the timestamp with the next day's midnight (an index on created_at could serve it);
    // SQLite stores RFC 3339 text in UTC, whose first ten characters are the day.
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
    let statuses = purchase_statuses();
    format!(
        "WITH purchase_days AS ( \
           SELECT user_id, {day} AS day, SUM(total_cents) AS spend \
           FROM orders \
           WHERE status IN ({statuses}) AND {up_to_end} \
           GROUP BY user_id, {day}), \
         numbered AS ( \
           SELECT user_id, day, spend, \
             ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY day) AS n \
           FROM purchase_days) \
         SELECT user_id, MIN(day) AS first_purchase, MAX(day) AS last_purchase, \
           CAST(COUNT(*) AS BIGINT) AS purchase_days, \
           CAST(COALESCE(SUM(CASE WHEN n > 1 THEN spend ELSE 0 END), 0) AS BIGINT) \
             AS repeat_spend_cents \
         FROM numbered GROUP BY user_id ORDER BY user_id"
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
