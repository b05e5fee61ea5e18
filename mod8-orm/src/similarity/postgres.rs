//! Similarity on PostgreSQL: pgvector's HNSW index when the `vector` extension can be
//! created, an exact scan otherwise.

use async_trait::async_trait;
use sqlx::Postgres;
use uuid::Uuid;

use crate::error::Result;
use crate::similarity::{ProductSimilarity, SimilarHit, SimilarQuery, SimilarityPath};
use crate::sql::similarity::target_product;
use crate::store::{SqlDriver, SqlStore};

crate::sql::similarity::impl_embedding_storage!(
    Postgres,
    Vec<f32>,
    |v: &[f32]| v.to_vec(),
    |v: Vec<f32>| v
);

/// Hits from pgvector's rows (its float distance can come back a hair below 0).
fn pgvector_hits(rows: Vec<(Uuid, String, f32)>) -> Vec<SimilarHit> {
    rows.into_iter()
        .map(|(product_id, name, distance)| SimilarHit {
            product_id,
            name,
            distance: distance.max(0.0),
        })
        .collect()
}

/// Serialises the connect-time DDL of processes starting together (an arbitrary key of
/// this crate's, next to the migration lock's).
const DDL_LOCK: i64 = 0x6d6f_6438_7665_6331;

impl SqlStore<Postgres> {
    /// Tries to set up pgvector: the extension, the `vector` column, its trigger and its
    /// HNSW index, in one transaction. `Err` carries why not (the exact scan is used then).
    async fn similarity_setup_pgvector(&self) -> std::result::Result<(), String> {
        let dimension = self.similarity.settings.dimension;
        let mut conn = self.conn().await.map_err(|e| e.to_string())?;
        let mut tx = conn
            .transaction(self.backend_name())
            .await
            .map_err(|e| e.to_string())?;
        let script = format!(
            "SELECT pg_advisory_xact_lock({DDL_LOCK});
             CREATE EXTENSION IF NOT EXISTS vector;"
        );
        <Postgres as SqlDriver>::run_script(tx.exec_untimed().0, &script)
            .await
            .map_err(|e| e.to_string())?;
        let current: Option<(String,)> = sqlx::query_as(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = 'product_embeddings'::regclass \
               AND a.attname = 'embedding_vec' AND NOT a.attisdropped",
        )
        .fetch_optional(tx.exec())
        .await
        .map_err(|e| e.to_string())?;
        let wanted = format!("vector({dimension})");
        if current.as_ref().map(|(t,)| t.as_str()) != Some(wanted.as_str()) {
            // Missing, or made for another dimension: (re)created and filled.
            let script = format!(
                "ALTER TABLE product_embeddings DROP COLUMN IF EXISTS embedding_vec;
                 ALTER TABLE product_embeddings ADD COLUMN embedding_vec vector({dimension});
                 CREATE OR REPLACE FUNCTION mod8_product_embedding_vec() RETURNS trigger
                 LANGUAGE plpgsql AS $fn$
                 BEGIN
                   IF NEW.dimension = {dimension} THEN
                     NEW.embedding_vec := NEW.embedding::vector({dimension});
                   ELSE
                     NEW.embedding_vec := NULL;
                   END IF;
                   RETURN NEW;
                 END $fn$;
                 DROP TRIGGER IF EXISTS product_embeddings_vec ON product_embeddings;
                 CREATE TRIGGER product_embeddings_vec
                   BEFORE INSERT OR UPDATE ON product_embeddings
                   FOR EACH ROW EXECUTE FUNCTION mod8_product_embedding_vec();
                 UPDATE product_embeddings SET embedding_vec = embedding::vector({dimension})
                   WHERE dimension = {dimension};"
            );
            <Postgres as SqlDriver>::run_script(tx.exec_untimed().0, &script)
                .await
                .map_err(|e| e.to_string())?;
        }
        tx.commit(self.backend_name())
            .await
            .map_err(|e| e.to_string())
    }

    /// Creates pgvector's HNSW index (cosine) unless it exists; `rebuild` rebuilds it.
    async fn similarity_create_hnsw(&self, rebuild: bool) -> Result<()> {
        let sql = if rebuild {
            "REINDEX INDEX product_embeddings_hnsw_idx"
        } else {
            "CREATE INDEX IF NOT EXISTS product_embeddings_hnsw_idx ON product_embeddings \
               USING hnsw (embedding_vec vector_cosine_ops)"
        };
        let mut conn = self.conn().await?;
        <Postgres as SqlDriver>::run_script(conn.exec_untimed().0, sql)
            .await
            .map_err(|e| self.err(e))
    }

    /// Rebuilds the similarity index: pgvector's HNSW index (`REINDEX`); nothing to do on
    /// the exact path. Returns the path.
    pub async fn rebuild_similarity_index(&self) -> Result<SimilarityPath> {
        let path = self.ensure_prepared().await?;
        if path == SimilarityPath::Pgvector {
            self.similarity_create_hnsw(true).await?;
        }
        Ok(path)
    }

    async fn ensure_prepared(&self) -> Result<SimilarityPath> {
        self.similarity
            .path
            .get_or_try_init(|| async {
                let path = if self.similarity.settings.use_vector_extension {
                    match self.similarity_setup_pgvector().await {
                        Ok(()) => SimilarityPath::Pgvector,
                        Err(reason) => {
                            tracing::info!(
                                backend = "postgres",
                                reason = %reason,
                                "product similarity: the vector extension is not available"
                            );
                            SimilarityPath::ExactScan
                        }
                    }
                } else {
                    SimilarityPath::ExactScan
                };
                let written = self.similarity_sync_rows().await?.len();
                if path == SimilarityPath::Pgvector {
                    // After the backfill: one bulk build instead of one insertion per row.
                    self.similarity_create_hnsw(false).await?;
                }
                tracing::info!(
                    backend = "postgres",
                    path = path.name(),
                    embedded = written,
                    dimension = self.similarity.settings.dimension,
                    "product similarity: {}",
                    match path {
                        SimilarityPath::Pgvector => "pgvector HNSW index (cosine)",
                        _ => "exact scan (no pgvector)",
                    }
                );
                Ok(path)
            })
            .await
            .copied()
    }

    /// The `k` nearest by pgvector's `<=>` in one statement, after `settings` (`SET LOCAL`s
    /// choosing how the server scans), in `tx`.
    async fn similarity_pgvector_rows(
        &self,
        tx: &mut crate::store::Tx<'_, Postgres>,
        query: &SimilarQuery,
        target: &[f32],
        settings: &str,
    ) -> Result<Vec<(Uuid, String, f32)>> {
        let (cte, conditions) = crate::sql::similarity::filter_sql(query, 4);
        let k = query.k;
        let exclude = target_product(query).unwrap_or_else(Uuid::nil);
        let dimension = self.similarity.settings.dimension;
        let sql = format!(
            "{cte}SELECT p.id, p.name, \
               CAST(e.embedding_vec <=> CAST($1 AS vector({dimension})) AS REAL) AS distance \
             FROM product_embeddings e JOIN products p ON p.id = e.product_id \
             WHERE {conditions} AND e.product_id <> $2 AND e.dimension = $3 \
             ORDER BY e.embedding_vec <=> CAST($1 AS vector({dimension})) LIMIT {k}"
        );
        <Postgres as SqlDriver>::run_script(tx.exec_untimed().0, settings)
            .await
            .map_err(|e| self.err(e))?;
        let mut q = sqlx::query_as::<Postgres, (Uuid, String, f32)>(&sql)
            .bind(target.to_vec())
            .bind(exclude)
            .bind(i32::try_from(dimension).unwrap_or(i32::MAX));
        if let Some(category) = query.category {
            q = q.bind(category);
        }
        q.fetch_all(tx.exec()).await.map_err(|e| self.err(e))
    }

    /// The exact ranking computed by the server: the same statement with index scans off,
    /// so every matching vector is compared (pgvector's `<=>` in C, a top-k sort), instead
    /// of streaming every vector to this process.
    async fn similarity_exact_in_server(
        &self,
        query: &SimilarQuery,
        target: &[f32],
    ) -> Result<Vec<SimilarHit>> {
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction(self.backend_name()).await?;
        let rows = self
            .similarity_pgvector_rows(&mut tx, query, target, "SET LOCAL enable_indexscan = off")
            .await?;
        tx.commit(self.backend_name()).await?;
        Ok(pgvector_hits(rows))
    }

    /// pgvector's HNSW index with iterative scans; `None` when it returned fewer than `k`
    /// rows while more match (the caller ranks exactly then).
    async fn similarity_hnsw(
        &self,
        query: &SimilarQuery,
        target: &[f32],
    ) -> Result<Option<Vec<SimilarHit>>> {
        let ef = self.similarity.settings.ef_search.clamp(1, 1000);
        // strict_order: iterative scans keep going until `k` rows pass the filter (up to
        // hnsw.max_scan_tuples), in exact distance order. No sequential scans: the ordered
        // index scan is what this query is for (on small tables the planner would rather
        // sort everything, which is correct but not the path this store reports).
        let settings = format!(
            "SET LOCAL hnsw.ef_search = {ef}; SET LOCAL hnsw.iterative_scan = strict_order; \
             SET LOCAL enable_seqscan = off"
        );
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction(self.backend_name()).await?;
        let rows = self
            .similarity_pgvector_rows(&mut tx, query, target, &settings)
            .await?;
        let k = query.k;
        let exclude = target_product(query).unwrap_or_else(Uuid::nil);
        let dimension = self.similarity.settings.dimension;
        if rows.len() < k as usize {
            let (cte, conditions) = crate::sql::similarity::filter_sql(query, 3);
            let count_sql = format!(
                "{cte}SELECT COUNT(*) FROM product_embeddings e \
                 JOIN products p ON p.id = e.product_id \
                 WHERE {conditions} AND e.product_id <> $1 AND e.dimension = $2"
            );
            let mut q = sqlx::query_as::<Postgres, (i64,)>(&count_sql)
                .bind(exclude)
                .bind(i32::try_from(dimension).unwrap_or(i32::MAX));
            if let Some(category) = query.category {
                q = q.bind(category);
            }
            let (matching,) = q.fetch_one(tx.exec()).await.map_err(|e| self.err(e))?;
            if matching > rows.len() as i64 {
                tracing::debug!(
                    got = rows.len(),
                    matching,
                    "pgvector's scan stopped short; ranking exactly"
                );
                return Ok(None);
            }
        }
        tx.commit(self.backend_name()).await?;
        Ok(Some(pgvector_hits(rows)))
    }

    async fn similarity_rank(&self, query: &SimilarQuery, exact: bool) -> Result<Vec<SimilarHit>> {
        query.validate()?;
        let path = self.ensure_prepared().await?;
        self.similarity_check_category(query).await?;
        let target = self.similarity_target(query).await?;
        if path == SimilarityPath::Pgvector {
            if !exact {
                if let Some(hits) = self.similarity_hnsw(query, &target).await? {
                    return Ok(hits);
                }
            }
            return self.similarity_exact_in_server(query, &target).await;
        }
        self.similarity_exact_scan(query, &target).await
    }
}

#[async_trait]
impl ProductSimilarity for SqlStore<Postgres> {
    async fn prepare(&self) -> Result<SimilarityPath> {
        self.ensure_prepared().await
    }

    fn path(&self) -> Option<SimilarityPath> {
        self.similarity.path.get().copied()
    }

    fn dimension(&self) -> usize {
        self.similarity.settings.dimension
    }

    async fn similar(&self, query: &SimilarQuery) -> Result<Vec<SimilarHit>> {
        self.similarity_rank(query, false).await
    }

    async fn similar_exact(&self, query: &SimilarQuery) -> Result<Vec<SimilarHit>> {
        self.similarity_rank(query, true).await
    }

    async fn set_embedding(&self, product_id: Uuid, embedding: Vec<f32>) -> Result<()> {
        self.ensure_prepared().await?;
        self.similarity_set_custom(product_id, embedding).await?;
        Ok(())
    }

    async fn reset_embedding(&self, product_id: Uuid) -> Result<()> {
        self.ensure_prepared().await?;
        self.similarity_drop_custom(product_id).await?;
        self.refresh(product_id).await
    }

    async fn refresh(&self, product_id: Uuid) -> Result<()> {
        self.ensure_prepared().await?;
        // Archived products stay in the table and index; every query filters them out.
        self.similarity_refresh_row(product_id).await?;
        Ok(())
    }

    async fn sync(&self) -> Result<u64> {
        self.ensure_prepared().await?;
        Ok(self.similarity_sync_rows().await?.len() as u64)
    }
}
