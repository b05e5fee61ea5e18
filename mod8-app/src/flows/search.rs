//! Full-text product search (`GET /api/products/search`): one page of
//! [`mod8_orm::ProductSearch::search`], cached per normalised query, filters, page size and
//! cursor for [`SEARCH_TTL`] under the [`keys::product_search_tag`] tag, which every product
//! change drops (in the writing process at once, and wherever the product-events consumer
//! runs when the change's event arrives), and a checkout that leaves a variant with nothing
//! to sell drops it too. Other stock changes (a cancelled order releasing units) are bounded
//! by the short TTL, as for category listings.

use std::collections::HashMap;
use std::time::Duration;

use mod8_cache::{Cache, EntryOptions};
use mod8_orm::{
    CategoryFilter, MatchKind, SearchHit, SearchMode, SearchPage, SearchQuery, MAX_QUERY_CHARS,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::flows::params;
use crate::{keys, App};

/// How long one page of search results stays cached (any product change drops every page
/// at once).
pub const SEARCH_TTL: Duration = Duration::from_secs(30);

/// One page of search results (`GET /api/products/search`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// The products found, best first.
    pub hits: Vec<SearchHit>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
    /// `full_text`; `fuzzy` when nothing matched the words and these are the products most
    /// similar by trigrams (typos); `hybrid` for `mode=hybrid`.
    pub matched: MatchKind,
    /// Whether this answer came from the cache.
    pub cached: bool,
}

/// The search of a query string: `q` (required, 1–256 characters, not blank; any
/// characters — see [`mod8_orm::ProductSearch`] for what quotes, `-`, `or` and `*` do),
/// `category` (an id or a slug; its whole subtree), `in_stock` (`true|false`), `cursor`,
/// `limit` (1–100, default 20) and `mode` (`text`, the default, or `hybrid`: the full-text
/// and similarity rankings fused, see [`mod8_orm::ProductSearch`]). Anything else, or a value
/// that does not parse, is a validation error naming the parameter.
///
/// # Errors
///
/// [`AppError::Validation`] naming the parameter.
pub fn search_query(params: &HashMap<String, String>) -> AppResult<SearchQuery> {
    let mut query = SearchQuery::default();
    let mut text = None;
    for (name, raw) in params {
        match name.as_str() {
            "q" => text = Some(raw.clone()),
            "category" => query.category = Some(raw.parse::<CategoryFilter>()?),
            "in_stock" => query.in_stock = Some(params::flag(name, raw)?),
            "limit" => query.limit = params::count(name, raw, SearchQuery::MAX_LIMIT, "page size")?,
            "cursor" => query.cursor = Some(params::cursor(raw)?),
            "mode" => query.mode = raw.parse::<SearchMode>()?,
            other => {
                return Err(params::unknown(
                    other,
                    "q, category, in_stock, cursor, limit or mode",
                ))
            }
        }
    }
    let text = text.ok_or_else(|| AppError::validation("q", "the query is missing"))?;
    if text.trim().is_empty() {
        return Err(AppError::validation("q", "the query is empty"));
    }
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(AppError::validation(
            "q",
            format!("the query is longer than {MAX_QUERY_CHARS} characters"),
        ));
    }
    query.text = text;
    Ok(query)
}

impl App {
    /// One page of a product search, from the cache or the SQL store (then cached for
    /// [`SEARCH_TTL`] under the [`keys::product_search_tag`]).
    ///
    /// # Errors
    ///
    /// [`AppError::Validation`] naming `q`, `limit` or `cursor`, [`AppError::NotFound`] for
    /// an unknown category, [`AppError::Unsupported`] when the SQL store cannot search, or
    /// the SQL store failing.
    pub async fn search_products(&self, query: SearchQuery) -> AppResult<SearchResults> {
        let key = keys::product_search(&format!(
            "{}\u{1f}{}\u{1f}{}",
            query.normalised_key(),
            query.limit,
            query.cursor.as_deref().unwrap_or("")
        ));
        if let Some(page) = self.cache.get::<SearchPage>(&key).await? {
            return Ok(results(page, true));
        }
        let options = EntryOptions::ttl(SEARCH_TTL).with_tag(keys::product_search_tag());
        let page: SearchPage = self
            .cache
            .get_or_load(&key, &options, || async {
                let search = self.sql.product_search().ok_or_else(|| {
                    AppError::Unsupported(format!(
                        "product search on the {} store",
                        self.sql.backend().name()
                    ))
                })?;
                self.call("sql.product_search", "sql", search.search(&query))
                    .await
            })
            .await
            .map_err(AppError::from)?;
        Ok(results(page, false))
    }
}

fn results(page: SearchPage, cached: bool) -> SearchResults {
    SearchResults {
        hits: page.hits,
        next_cursor: page.next_cursor,
        matched: page.matched,
        cached,
    }
}

impl App {
    /// After a committed checkout reserved units of `variants`: when one of them has none left
    /// to sell, drop every cached search page and similarity answer (an `in_stock` filter may
    /// answer differently now). One inventory read per variant until one is out of stock; a failed read drops
    /// the pages too.
    pub(crate) async fn search_stock_changed(&self, variants: &[Uuid]) {
        for variant in variants {
            let sold_out = match self.sql.inventory(*variant).await {
                Ok(level) => level.available() <= 0,
                Err(e) => {
                    tracing::debug!(variant_id = %variant, error = %e, "stock read after a checkout failed; dropping search pages");
                    true
                }
            };
            if sold_out {
                drop_stock_filtered_pages(&self.cache, *variant).await;
                return;
            }
        }
    }
}

impl App {
    /// After a committed cancellation released `released` units (variant, quantity): when a
    /// variant had nothing to sell before (all it has available now is what came back),
    /// drop every cached search page and similarity answer. No
    /// lines known, or a failed read, drops the pages too.
    pub(crate) async fn search_stock_released(&self, released: &[(Uuid, i64)]) {
        if released.is_empty() {
            drop_stock_filtered_pages(&self.cache, Uuid::nil()).await;
            return;
        }
        for (variant, quantity) in released {
            let back_in_stock = match self.sql.inventory(*variant).await {
                Ok(level) => level.available() <= *quantity,
                Err(e) => {
                    tracing::debug!(variant_id = %variant, error = %e, "stock read after a cancellation failed; dropping search pages");
                    true
                }
            };
            if back_in_stock {
                drop_stock_filtered_pages(&self.cache, *variant).await;
                return;
            }
        }
    }
}

/// A variant went from available to sold out or back: drops every cached search page and
/// similarity answer (their `in_stock` filters may answer differently now).
async fn drop_stock_filtered_pages(cache: &Cache, variant: Uuid) {
    for tag in [keys::product_search_tag(), keys::similar_products_tag()] {
        if let Err(e) = cache.invalidate_tag(tag).await {
            tracing::warn!(variant_id = %variant, tag, error = %e, "could not drop cached pages after a stock change");
        }
    }
}

/// Drops every cached search page.
pub(crate) async fn invalidate_search(cache: &Cache) -> mod8_cache::Result<()> {
    cache.invalidate_tag(keys::product_search_tag()).await?;
    Ok(())
}

/// [`invalidate_search`] after a change of product (or variant) `id` in this process; a
/// failure is logged (the pages expire by their TTL).
pub(crate) async fn invalidate_search_logged(cache: &Cache, id: Uuid) {
    if let Err(e) = invalidate_search(cache).await {
        tracing::warn!(product_id = %id, error = %e, "could not drop cached search pages");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn field(r: AppResult<SearchQuery>) -> String {
        match r {
            Err(AppError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn search_queries_name_the_bad_parameter() {
        assert_eq!(field(search_query(&params(&[]))), "q");
        assert_eq!(field(search_query(&params(&[("q", "  ")]))), "q");
        assert_eq!(
            field(search_query(&params(&[("q", &"x".repeat(257))]))),
            "q"
        );
        assert_eq!(
            field(search_query(&params(&[("q", "a"), ("limit", "0")]))),
            "limit"
        );
        assert_eq!(
            field(search_query(&params(&[("q", "a"), ("mode", "vector")]))),
            "mode"
        );
        assert_eq!(
            field(search_query(&params(&[("q", "a"), ("in_stock", "x")]))),
            "in_stock"
        );
        assert_eq!(
            field(search_query(&params(&[("q", "a"), ("sort", "x")]))),
            "sort"
        );
        let q = search_query(&params(&[("q", "\"usb -"), ("category", "kitchen")])).unwrap();
        assert_eq!(q.text, "\"usb -");
        assert_eq!(q.category, Some(CategoryFilter::Slug("kitchen".into())));
        assert_eq!(q.mode, SearchMode::Text);
        let q = search_query(&params(&[("q", "usb"), ("mode", "hybrid")])).unwrap();
        assert_eq!(q.mode, SearchMode::Hybrid);
    }
}
