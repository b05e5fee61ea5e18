//! [`crate::ProductSearch`] for every backend: PostgreSQL's weighted `tsvector` with
//! `websearch_to_tsquery`, `ts_rank_cd` and `ts_headline`, and pg_trgm for typos; SQLite's
//! FTS5 with `bm25()`, `snippet()` and a trigram index for typos (see the `0004_search`
//! migrations).

use uuid::Uuid;

use crate::search::{
    fold, fuzzy_score, leading_words, snippet_html, trigram_match, MatchKind, SearchCursor,
    SearchHit, FUZZY_THRESHOLD,
};

/// The category subtree (`$3`) every statement filters on, and the stock filter (`$4`).
const FILTERS: &str = "p.archived_at IS NULL \
     AND ($3 IS NULL OR p.category_id IN (SELECT id FROM sub)) \
     AND ($4 IS NULL OR $4 = EXISTS (SELECT 1 FROM product_variants v \
          JOIN inventory i ON i.variant_id = v.id \
          WHERE v.product_id = p.id AND i.on_hand - i.reserved > 0))";

/// The category's subtree, `$3` at its root.
const SUBTREE: &str = "WITH RECURSIVE sub(id) AS ( \
       SELECT id FROM categories WHERE id = $3 \
       UNION ALL SELECT c.id FROM categories c JOIN sub ON c.parent_id = sub.id)";

/// After the cursor's score (`$5`) and id (`$6`), best first, `$7` rows.
const PAGE: &str = "($5 IS NULL OR score < $5 OR (score = $5 AND product_id > $6)) \
     ORDER BY score DESC, product_id LIMIT $7";

/// PostgreSQL's full-text statement: `$1` the `websearch_to_tsquery` text, `$2` the
/// `to_tsquery` text of the prefix items (either may be empty).
pub(crate) fn postgres_full_text() -> String {
    format!(
        "{SUBTREE}, \
         q AS (SELECT CASE \
             WHEN $2 = '' THEN websearch_to_tsquery('mod8_search', $1) \
             WHEN $1 = '' THEN to_tsquery('mod8_search', $2) \
             ELSE websearch_to_tsquery('mod8_search', $1) && to_tsquery('mod8_search', $2) \
           END AS query), \
         hits AS ( \
           SELECT p.id AS product_id, p.sku, p.name, p.brand, p.category_id, p.description, \
             CAST(ts_rank_cd('{{0.1, 0.2, 0.4, 1.0}}', p.search_vector, q.query) \
               AS DOUBLE PRECISION) AS score \
           FROM products p CROSS JOIN q \
           WHERE p.search_vector @@ q.query AND {FILTERS}) \
         SELECT product_id, sku, name, brand, category_id, score, \
           ts_headline('mod8_search', description, (SELECT query FROM q), \
             'StartSel=' || chr(1) || ', StopSel=' || chr(2) || \
             ', MaxWords=16, MinWords=6, MaxFragments=1, FragmentDelimiter=\" … \"') \
             AS snippet \
         FROM hits WHERE {PAGE}"
    )
}

/// SQLite's full-text statement: `$1` the FTS5 `MATCH` expression (`$2` is unused: every
/// statement takes the same seven parameters). Every match is ranked, but `snippet()` runs
/// for the page's rows only (a second `MATCH` by rowid), as `ts_headline` does on PostgreSQL.
pub(crate) fn sqlite_full_text() -> String {
    format!(
        "{SUBTREE}, \
         hits AS MATERIALIZED ( \
           SELECT product_fts.rowid AS doc, d.product_id, p.sku, p.name, p.brand, \
             p.category_id, -bm25(product_fts, 10.0, 4.0, 2.0, 1.0) AS score \
           FROM product_fts \
           JOIN product_search_docs d ON d.rowid = product_fts.rowid \
           JOIN products p ON p.id = d.product_id \
           WHERE product_fts MATCH $1 AND ($2 IS NULL OR $2 IS NOT NULL) AND {FILTERS}), \
         page AS MATERIALIZED (SELECT * FROM hits WHERE {PAGE}) \
         SELECT page.product_id, page.sku, page.name, page.brand, page.category_id, page.score, \
           snippet(product_fts, 3, char(1), char(2), '…', 16) AS snippet \
         FROM page JOIN product_fts ON product_fts.rowid = page.doc \
         WHERE product_fts MATCH $1 \
         ORDER BY page.score DESC, page.product_id"
    )
}

/// PostgreSQL's typo fallback: `$1` the query words (space-separated), `$2` the threshold.
/// Candidates are the products whose words are similar to the query's (`<%`, pg_trgm's word
/// similarity, through the trigram index), the [`FUZZY_CANDIDATES`] most similar of them;
/// each is scored like [`fuzzy_score`] (the bound keeps a query that resembles half the
/// catalog from scoring all of it).
pub(crate) fn postgres_fuzzy() -> String {
    format!(
        "{SUBTREE}, \
         gated AS MATERIALIZED ( \
           SELECT p.id AS product_id, p.sku, p.name, p.brand, p.category_id, \
             p.description AS snippet, p.search_words \
           FROM products p \
           WHERE $1 <% p.search_words AND {FILTERS} \
           ORDER BY $1 <<-> p.search_words, p.id LIMIT {FUZZY_CANDIDATES}), \
         cand AS MATERIALIZED ( \
           SELECT product_id, sku, name, brand, category_id, snippet, \
             CAST((SELECT avg(best) FROM ( \
                 SELECT max(similarity(w, v)) AS best \
                 FROM string_to_table($1, ' ') w \
                 CROSS JOIN string_to_table(g.search_words, ' ') v \
                 GROUP BY w) b) AS DOUBLE PRECISION) AS score \
           FROM gated g) \
         SELECT product_id, sku, name, brand, category_id, score, snippet \
         FROM cand WHERE score >= $2 AND {PAGE}"
    )
}

/// SQLite's typo-fallback candidates: products sharing a trigram with the query words
/// (`$1`), most trigrams first, at most [`FUZZY_CANDIDATES`]; they are scored in Rust.
pub(crate) fn sqlite_fuzzy_candidates() -> String {
    format!(
        "{SUBTREE} \
         SELECT d.product_id, p.sku, p.name, p.brand, p.category_id, \
           d.name || ' ' || d.brand || ' ' || d.category_path AS words, d.description \
         FROM product_trigrams t \
         JOIN product_search_docs d ON d.rowid = t.rowid \
         JOIN products p ON p.id = d.product_id \
         WHERE product_trigrams MATCH $1 AND ($2 IS NULL OR $2 IS NOT NULL) \
           AND ($5 IS NULL OR $5 IS NOT NULL) AND ($6 IS NULL OR $6 IS NOT NULL) \
           AND {FILTERS} \
         ORDER BY bm25(product_trigrams), d.product_id LIMIT $7"
    )
}

/// The most typo-fallback candidates either backend scores.
pub(crate) const FUZZY_CANDIDATES: i64 = 200;

/// A fallback candidate on SQLite.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FuzzyCandidate {
    pub(crate) product_id: Uuid,
    pub(crate) sku: String,
    pub(crate) name: String,
    pub(crate) brand: Option<String>,
    pub(crate) category_id: Uuid,
    pub(crate) words: String,
    pub(crate) description: String,
}

/// Scores SQLite's fallback candidates and cuts the page after `after`.
pub(crate) fn fuzzy_page(
    words: &[String],
    candidates: Vec<FuzzyCandidate>,
    after: Option<&SearchCursor>,
    limit: usize,
) -> Vec<SearchHit> {
    let mut hits: Vec<SearchHit> = candidates
        .into_iter()
        .filter_map(|c| {
            let score = fuzzy_score(words, &fold(&c.words));
            (score >= FUZZY_THRESHOLD).then(|| SearchHit {
                product_id: c.product_id,
                sku: c.sku,
                name: c.name,
                brand: c.brand,
                category_id: c.category_id,
                score,
                snippet: leading_words(&c.description),
            })
        })
        .filter(|h| match after {
            None => true,
            Some(a) => h.score < a.s || (h.score == a.s && h.product_id > a.id),
        })
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.product_id.cmp(&b.product_id))
    });
    hits.truncate(limit);
    hits
}

/// The products `ids` (their number is `n`) as hits, archived ones left out, and with
/// `negated` those matching the negation query left out too. Parameters: with a negation,
/// PostgreSQL's `$1` (websearch text) and `$2` (prefix tsquery), or SQLite's `$1` (FTS5
/// match), then the ids. The snippet column holds the raw description.
pub(crate) fn hits_of(postgres: bool, n: usize, negated: bool) -> String {
    let first = match (negated, postgres) {
        (false, _) => 1,
        (true, true) => 3,
        (true, false) => 2,
    };
    let ids = (first..first + n.max(1))
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let ids = if n == 0 { "NULL".to_owned() } else { ids };
    let negation = match (negated, postgres) {
        (false, _) => String::new(),
        (true, true) => "AND NOT (p.search_vector @@ CASE \
               WHEN $2 = '' THEN websearch_to_tsquery('mod8_search', $1) \
               WHEN $1 = '' THEN to_tsquery('mod8_search', $2) \
               ELSE websearch_to_tsquery('mod8_search', $1) || to_tsquery('mod8_search', $2) \
             END)"
            .to_owned(),
        (true, false) => "AND p.id NOT IN (SELECT d.product_id FROM product_fts \
               JOIN product_search_docs d ON d.rowid = product_fts.rowid \
               WHERE product_fts MATCH $1)"
            .to_owned(),
    };
    format!(
        "SELECT p.id AS product_id, p.sku, p.name, p.brand, p.category_id, \
           CAST(0 AS DOUBLE PRECISION) AS score, p.description AS snippet \
         FROM products p \
         WHERE p.id IN ({ids}) AND p.archived_at IS NULL {negation}"
    )
}

/// Finishes hits read by SQL: snippets escaped (and cut for fuzzy hits).
pub(crate) fn finish_hits(kind: MatchKind, hits: Vec<SearchHit>) -> Vec<SearchHit> {
    hits.into_iter()
        .map(|mut h| {
            h.snippet = match kind {
                MatchKind::FullText => snippet_html(&h.snippet),
                MatchKind::Hybrid => h.snippet,
                MatchKind::Fuzzy => leading_words(&h.snippet),
            };
            h
        })
        .collect()
}

/// The `MATCH` of SQLite's fallback, or `None` when no query word has a trigram.
pub(crate) fn sqlite_trigram_match(words: &[String]) -> Option<String> {
    trigram_match(words)
}

/// Implements `ProductSearch` for `SqlStore<$db>`.
macro_rules! impl_product_search {
    ($db:ty) => {
        const _: () = {
            use ::uuid::Uuid;
            use $crate::error::{Error, Result};
            use $crate::repository::Backend;
            use $crate::search::{
                reciprocal_rank_fusion, CategoryFilter, MatchKind, ParsedQuery, SearchCursor,
                SearchHit, SearchMode, SearchPage, SearchQuery, FUZZY_THRESHOLD, HYBRID_DEPTH,
                RRF_K,
            };
            use $crate::similarity::{ProductSimilarity, SimilarQuery, SimilarTo};
            use $crate::sql::search::*;
            use $crate::store::{SqlDriver, SqlStore};

            impl SqlStore<$db> {
                /// The id of the category a filter names (`NotFound` when none).
                async fn search_category(&self, filter: &CategoryFilter) -> Result<Uuid> {
                    let mut conn = self.conn().await?;
                    let (id, slug) = match filter {
                        CategoryFilter::Id(id) => (Some(*id), None),
                        CategoryFilter::Slug(s) => (None, Some(s.as_str())),
                    };
                    ::sqlx::query_scalar::<$db, Uuid>(
                        "SELECT id FROM categories WHERE id = $1 OR slug = $2",
                    )
                    .bind(id)
                    .bind(slug)
                    .fetch_optional(conn.exec())
                    .await
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| match filter {
                        CategoryFilter::Id(id) => Error::not_found("category", id),
                        CategoryFilter::Slug(s) => Error::not_found("category", s),
                    })
                }

                /// One page matched one way.
                async fn search_page(
                    &self,
                    parsed: &ParsedQuery,
                    kind: MatchKind,
                    category: Option<Uuid>,
                    query: &SearchQuery,
                    after: Option<&SearchCursor>,
                    limit: i64,
                ) -> Result<Vec<SearchHit>> {
                    let postgres = <$db as SqlDriver>::DIALECT.backend == Backend::Postgres;
                    let (score, id) = (after.map(|a| a.s), after.map(|a| a.id));
                    let mut conn = self.conn().await?;
                    match kind {
                        MatchKind::FullText => {
                            let (statement, first, second) = if postgres {
                                (
                                    postgres_full_text(),
                                    parsed.websearch_text(),
                                    Some(parsed.prefix_tsquery()),
                                )
                            } else {
                                (sqlite_full_text(), parsed.fts5_match(), None)
                            };
                            let hits = ::sqlx::query_as::<$db, SearchHit>(&statement)
                                .bind(first)
                                .bind(second)
                                .bind(category)
                                .bind(query.in_stock)
                                .bind(score)
                                .bind(id)
                                .bind(limit)
                                .fetch_all(conn.exec())
                                .await
                                .map_err(|e| self.err(e))?;
                            Ok(finish_hits(kind, hits))
                        }
                        MatchKind::Hybrid => {
                            Err(Error::validation("cursor", "not a cursor of this search"))
                        }
                        MatchKind::Fuzzy => {
                            let words = parsed.fuzzy_words();
                            if postgres {
                                let hits = ::sqlx::query_as::<$db, SearchHit>(&postgres_fuzzy())
                                    .bind(words.join(" "))
                                    .bind(FUZZY_THRESHOLD)
                                    .bind(category)
                                    .bind(query.in_stock)
                                    .bind(score)
                                    .bind(id)
                                    .bind(limit)
                                    .fetch_all(conn.exec())
                                    .await
                                    .map_err(|e| self.err(e))?;
                                return Ok(finish_hits(kind, hits));
                            }
                            let Some(matcher) = sqlite_trigram_match(&words) else {
                                return Ok(Vec::new());
                            };
                            let candidates =
                                ::sqlx::query_as::<$db, FuzzyCandidate>(&sqlite_fuzzy_candidates())
                                    .bind(matcher)
                                    .bind(Option::<String>::None)
                                    .bind(category)
                                    .bind(query.in_stock)
                                    .bind(Option::<f64>::None)
                                    .bind(Option::<Uuid>::None)
                                    .bind(FUZZY_CANDIDATES)
                                    .fetch_all(conn.exec())
                                    .await
                                    .map_err(|e| self.err(e))?;
                            Ok(fuzzy_page(
                                &words,
                                candidates,
                                after,
                                usize::try_from(limit).unwrap_or(0),
                            ))
                        }
                    }
                }
            }

            impl SqlStore<$db> {
                /// `ids` as hits (raw descriptions for snippets), without archived products
                /// and without those matching `negations`.
                async fn hits_of(
                    &self,
                    ids: &[Uuid],
                    negations: Option<&ParsedQuery>,
                ) -> Result<Vec<SearchHit>> {
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    let postgres = <$db as SqlDriver>::DIALECT.backend == Backend::Postgres;
                    let statement = hits_of(postgres, ids.len(), negations.is_some());
                    let mut select = ::sqlx::query_as::<$db, SearchHit>(&statement);
                    if let Some(negations) = negations {
                        if postgres {
                            select = select
                                .bind(negations.websearch_text())
                                .bind(negations.prefix_tsquery());
                        } else {
                            select = select.bind(negations.fts5_match());
                        }
                    }
                    for id in ids {
                        select = select.bind(*id);
                    }
                    let mut conn = self.conn().await?;
                    select.fetch_all(conn.exec()).await.map_err(|e| self.err(e))
                }

                /// One page of a hybrid search: the first [`HYBRID_DEPTH`] products of the
                /// full-text ranking (or its typo fallback) and of the similarity ranking of
                /// the query's words, fused by reciprocal rank fusion.
                async fn hybrid_page(
                    &self,
                    parsed: &ParsedQuery,
                    category: Option<Uuid>,
                    query: &SearchQuery,
                    after: Option<&SearchCursor>,
                    limit: i64,
                ) -> Result<SearchPage> {
                    let depth = i64::from(HYBRID_DEPTH);
                    let mut text = self
                        .search_page(parsed, MatchKind::FullText, category, query, None, depth)
                        .await?;
                    if text.is_empty() {
                        text = self
                            .search_page(parsed, MatchKind::Fuzzy, category, query, None, depth)
                            .await?;
                    }
                    let embedder =
                        $crate::embedding::DefaultEmbedder::new(ProductSimilarity::dimension(self));
                    let target = embedder.embed(&$crate::embedding::ProductText {
                        name: parsed.positive_words().join(" "),
                        ..Default::default()
                    });
                    let nearest = ProductSimilarity::similar(
                        self,
                        &SimilarQuery {
                            target: SimilarTo::Vector(target),
                            k: HYBRID_DEPTH,
                            category,
                            in_stock: query.in_stock,
                        },
                    )
                    .await?;
                    let text_ranking: Vec<Uuid> = text.iter().map(|h| h.product_id).collect();
                    let only_near: Vec<Uuid> = nearest
                        .iter()
                        .map(|h| h.product_id)
                        .filter(|id| !text_ranking.contains(id))
                        .collect();
                    let extra = finish_hits(
                        MatchKind::Fuzzy,
                        self.hits_of(&only_near, parsed.negations().as_ref())
                            .await?,
                    );
                    let mut found: ::std::collections::HashMap<Uuid, SearchHit> = text
                        .into_iter()
                        .chain(extra)
                        .map(|h| (h.product_id, h))
                        .collect();
                    let vector_ranking: Vec<Uuid> = nearest
                        .iter()
                        .map(|h| h.product_id)
                        .filter(|id| found.contains_key(id))
                        .collect();
                    let mut hits: Vec<SearchHit> =
                        reciprocal_rank_fusion(&[&text_ranking, &vector_ranking], RRF_K)
                            .into_iter()
                            .filter(|(id, score)| match after {
                                None => true,
                                Some(a) => *score < a.s || (*score == a.s && *id > a.id),
                            })
                            .filter_map(|(id, score)| {
                                found.remove(&id).map(|mut hit| {
                                    hit.score = score;
                                    hit
                                })
                            })
                            .collect();
                    let page = usize::try_from(limit).unwrap_or(usize::MAX);
                    let next_cursor = if hits.len() > page {
                        hits.truncate(page);
                        hits.last()
                            .map(|last| SearchCursor::encode(MatchKind::Hybrid, last, query))
                    } else {
                        None
                    };
                    Ok(SearchPage {
                        hits,
                        next_cursor,
                        matched: MatchKind::Hybrid,
                    })
                }
            }

            #[::async_trait::async_trait]
            impl $crate::search::ProductSearch for SqlStore<$db> {
                async fn search(&self, query: &SearchQuery) -> Result<SearchPage> {
                    let parsed = ParsedQuery::parse(&query.text)?;
                    let limit = query.page_size()?;
                    let after = SearchCursor::decode(query)?;
                    let category = match &query.category {
                        Some(filter) => Some(self.search_category(filter).await?),
                        None => None,
                    };
                    let mut kind = after.as_ref().map(|a| a.m).unwrap_or_default();
                    if query.mode == SearchMode::Hybrid {
                        kind = MatchKind::Hybrid;
                    }
                    if !parsed.is_searchable() {
                        return Ok(SearchPage {
                            hits: Vec::new(),
                            next_cursor: None,
                            matched: kind,
                        });
                    }
                    if query.mode == SearchMode::Hybrid {
                        return self
                            .hybrid_page(&parsed, category, query, after.as_ref(), limit)
                            .await;
                    }
                    let mut hits = self
                        .search_page(&parsed, kind, category, query, after.as_ref(), limit)
                        .await?;
                    if hits.is_empty() && after.is_none() {
                        kind = MatchKind::Fuzzy;
                        hits = self
                            .search_page(&parsed, kind, category, query, None, limit)
                            .await?;
                    }
                    let next_cursor = if hits.len() as i64 == limit {
                        hits.last()
                            .map(|last| SearchCursor::encode(kind, last, query))
                    } else {
                        None
                    };
                    Ok(SearchPage {
                        hits,
                        next_cursor,
                        matched: kind,
                    })
                }
            }
        };
    };
}

pub(crate) use impl_product_search;
