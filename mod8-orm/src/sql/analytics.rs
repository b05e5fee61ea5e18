//! [`crate::AnalyticsRepository`] for every backend.

/// Implements `AnalyticsRepository` for `SqlStore<$db>`.
macro_rules! impl_analytics_repository {
    ($db:ty) => {
        const _: () = {
            use $crate::error::Result;
            use $crate::model::*;
            use $crate::store::{SqlDriver, SqlStore};
            use $crate::sql;
            use ::chrono::{DateTime, Utc};

            /// Spend per user (cancelled orders excluded), joined to users.
            const SPEND: &str = "SELECT u.id AS user_id, u.username, u.email, u.profile_score, \
                   CAST(COUNT(o.id) AS BIGINT) AS orders, \
                   CAST(COALESCE(SUM(o.total_cents), 0) AS BIGINT) AS total_spent_cents \
                 FROM users u LEFT JOIN orders o ON o.user_id = u.id AND o.status <> 'cancelled'";

            #[::async_trait::async_trait]
            impl $crate::repository::AnalyticsRepository for SqlStore<$db> {
                async fn user_distribution(&self) -> Result<Vec<CountryDistribution>> {
                    let mut conn = self.conn().await?;
                    let rows = ::sqlx::query_as::<$db, sql::DistributionRow>(
                        "SELECT co.iso_code, co.name AS country, CAST(COUNT(u.id) AS BIGINT) AS users \
                         FROM countries co \
                         LEFT JOIN cities ci ON ci.country_id = co.id \
                         LEFT JOIN addresses a ON a.city_id = ci.id \
                         LEFT JOIN users u ON u.address_id = a.id \
                         GROUP BY co.iso_code, co.name ORDER BY users DESC, co.name",
                    )
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    Ok(sql::distribution(rows))
                }

                async fn registration_cohorts(
                    &self,
                    active_since: DateTime<Utc>,
                ) -> Result<Vec<Cohort>> {
                    let month = (<$db as SqlDriver>::DIALECT.month_of)("u.created_at");
                    let mut conn = self.conn().await?;
                    let rows = ::sqlx::query_as::<$db, sql::CohortRow>(&format!(
                        "SELECT {month} AS month, CAST(COUNT(*) AS BIGINT) AS users, \
                           CAST(AVG(CASE WHEN u.is_verified THEN 1.0 ELSE 0.0 END) AS DOUBLE PRECISION) AS verified_share, \
                           CAST(AVG(CASE WHEN u.last_active_at >= $1 THEN 1.0 ELSE 0.0 END) AS DOUBLE PRECISION) AS active_share, \
                           CAST(AVG(u.profile_score) AS DOUBLE PRECISION) AS avg_profile_score, \
                           CAST(COALESCE(SUM(o.orders), 0) AS BIGINT) AS orders \
                         FROM users u LEFT JOIN ( \
                           SELECT user_id, COUNT(*) AS orders FROM orders \
                           WHERE status <> 'cancelled' GROUP BY user_id) o ON o.user_id = u.id \
                         GROUP BY {month} ORDER BY month"
                    ))
                    .bind(sql::stored(active_since))
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    Ok(rows.into_iter().map(Cohort::from).collect())
                }

                async fn top_spenders(
                    &self,
                    min_spent_cents: i64,
                    limit: u32,
                ) -> Result<Vec<HighValueUser>> {
                    let limit = sql::limit(limit)?;
                    let mut conn = self.conn().await?;
                    let rows = ::sqlx::query_as::<$db, sql::HighValueRow>(&format!(
                        "{SPEND} GROUP BY u.id, u.username, u.email, u.profile_score \
                         HAVING COALESCE(SUM(o.total_cents), 0) >= $1 AND COUNT(o.id) > 0 \
                         ORDER BY total_spent_cents DESC, u.username LIMIT $2"
                    ))
                    .bind(min_spent_cents)
                    .bind(limit)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    Ok(rows.into_iter().map(HighValueUser::from).collect())
                }

                async fn top_profiles(&self, min_score: f64, limit: u32) -> Result<Vec<HighValueUser>> {
                    let limit = sql::limit(limit)?;
                    let mut conn = self.conn().await?;
                    let rows = ::sqlx::query_as::<$db, sql::HighValueRow>(&format!(
                        "{SPEND} WHERE u.profile_score >= $1 \
                         GROUP BY u.id, u.username, u.email, u.profile_score \
                         ORDER BY u.profile_score DESC, total_spent_cents DESC, u.username LIMIT $2"
                    ))
                    .bind(min_score)
                    .bind(limit)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    Ok(rows.into_iter().map(HighValueUser::from).collect())
                }

                $crate::sql::customer_summary::customer_rfm_method!($db);
                $crate::sql::purchases::purchases_methods!($db);

                async fn co_purchase_counts(&self) -> $crate::error::Result<$crate::CoPurchaseCounts> {
                    use $crate::sql::purchases::{
                        co_purchase_counts, lines_by_day, CoPurchaseRow, DayLinesRow, CO_PURCHASES,
                    };
                    use $crate::store::SqlDriver;

                    let mut conn = self.conn().await?;
                    let pairs = ::sqlx::query_as::<$db, CoPurchaseRow>(CO_PURCHASES)
                        .fetch_all(conn.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                    let days = ::sqlx::query_as::<$db, DayLinesRow>(&lines_by_day(
                        <$db as SqlDriver>::DIALECT.backend,
                    ))
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    co_purchase_counts(pairs, days, self.backend_name())
                }
            }
        };
    };
}

pub(crate) use impl_analytics_repository;
