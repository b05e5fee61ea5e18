//! [`crate::OutboxRepository`] for every backend.

/// Implements `OutboxRepository` for `SqlStore<$db>`.
macro_rules! impl_outbox_repository {
    ($db:ty) => {
        const _: () = {
            use ::uuid::Uuid;
            use $crate::error::{Error, Result};
            use $crate::model::*;
            use $crate::sql::{self, OUTBOX_COLS};
            use $crate::store::{SqlDriver, SqlStore};
            use $crate::validate;

            #[::async_trait::async_trait]
            impl $crate::repository::OutboxRepository for SqlStore<$db> {
                async fn enqueue(
                    &self,
                    topic: &str,
                    payload: ::serde_json::Value,
                ) -> Result<OutboxMessage> {
                    let topic = validate::text("topic", topic, 200)?;
                    let mut conn = self.conn().await?;
                    ::sqlx::query_as::<$db, OutboxMessage>(&format!(
                        "INSERT INTO outbox (id, topic, payload, created_at, attempts) \
                         VALUES ($1, $2, $3, $4, 0) RETURNING {OUTBOX_COLS}"
                    ))
                    .bind(Uuid::new_v4())
                    .bind(topic)
                    .bind(::sqlx::types::Json(&payload))
                    .bind(sql::now())
                    .fetch_one(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn claim_pending(
                    &self,
                    limit: u32,
                    lease: std::time::Duration,
                ) -> Result<Vec<OutboxMessage>> {
                    let limit = sql::limit(limit)?;
                    let lease = ::chrono::Duration::from_std(lease)
                        .map_err(|_| Error::validation("lease", "too long"))?;
                    let now = sql::now();
                    let until = now
                        .checked_add_signed(lease)
                        .ok_or_else(|| Error::validation("lease", "too long"))?;
                    let skip_locked = <$db as SqlDriver>::DIALECT.skip_locked;
                    let mut conn = self.conn().await?;
                    let mut claimed = ::sqlx::query_as::<$db, OutboxMessage>(&format!(
                        "UPDATE outbox SET attempts = attempts + 1, locked_until = $1 \
                         WHERE id IN (SELECT id FROM outbox WHERE sent_at IS NULL \
                           AND (locked_until IS NULL OR locked_until <= $2) \
                           ORDER BY created_at, id LIMIT $3{skip_locked}) \
                         RETURNING {OUTBOX_COLS}"
                    ))
                    .bind(sql::stored(until))
                    .bind(now)
                    .bind(limit)
                    .fetch_all(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    claimed.sort_by(|a, b| (a.created_at, a.id).cmp(&(b.created_at, b.id)));
                    Ok(claimed)
                }

                async fn mark_sent(&self, ids: &[Uuid]) -> Result<u64> {
                    let mut conn = self.conn().await?;
                    let mut marked = 0;
                    let dialect = &<$db as SqlDriver>::DIALECT;
                    let per = dialect.max_bind_params - 1;
                    for chunk in ids.chunks(per) {
                        let sql = format!(
                            "UPDATE outbox SET sent_at = {}, locked_until = NULL \
                             WHERE sent_at IS NULL AND id IN ({})",
                            dialect.param(1),
                            dialect.list(chunk.len(), 2)
                        );
                        let mut q = ::sqlx::query::<$db>(&sql).bind(sql::now());
                        for id in chunk {
                            q = q.bind(*id);
                        }
                        marked += q
                            .execute(conn.exec())
                            .await
                            .map_err(|e| self.err(e))?
                            .rows_affected();
                    }
                    Ok(marked)
                }

                async fn count_pending(&self) -> Result<u64> {
                    let mut conn = self.conn().await?;
                    // Served by the partial index `outbox_pending_idx`.
                    let pending: i64 = ::sqlx::query_scalar::<$db, i64>(
                        "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL",
                    )
                    .fetch_one(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?;
                    Ok(u64::try_from(pending).unwrap_or(0))
                }

                async fn purge_sent(&self, retention: std::time::Duration) -> Result<u64> {
                    let retention = ::chrono::Duration::from_std(retention)
                        .map_err(|_| Error::validation("retention", "too long"))?;
                    let cutoff = sql::now()
                        .checked_sub_signed(retention)
                        .ok_or_else(|| Error::validation("retention", "too long"))?;
                    let mut conn = self.conn().await?;
                    let purged = ::sqlx::query::<$db>(
                        "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at <= $1",
                    )
                    .bind(sql::stored(cutoff))
                    .execute(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .rows_affected();
                    Ok(purged)
                }

                async fn oldest_pending(&self) -> Result<Option<OutboxMessage>> {
                    let mut conn = self.conn().await?;
                    // The first row of the partial index `outbox_pending_idx`.
                    ::sqlx::query_as::<$db, OutboxMessage>(&format!(
                        "SELECT {OUTBOX_COLS} FROM outbox WHERE sent_at IS NULL \
                         ORDER BY created_at, id LIMIT 1"
                    ))
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))
                }

                async fn count_outbox_rows(&self) -> Result<u64> {
                    let mut conn = self.conn().await?;
                    let rows: i64 = ::sqlx::query_scalar::<$db, i64>("SELECT COUNT(*) FROM outbox")
                        .fetch_one(conn.exec())
                        .await
                        .map_err(|e| self.err(e))?;
                    Ok(u64::try_from(rows).unwrap_or(0))
                }
            }
        };
    };
}

pub(crate) use impl_outbox_repository;
