//! The search route: `GET /api/products/search`, public like the other catalog reads.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::catalog::{public, query_params};
use super::openapi::PublicReadErrors;
use crate::error::AppResult;
use crate::flows::search::{search_query, SearchResults};
use crate::App;
use mod8_orm::SearchMode;

/// Search the catalog's products.
///
/// Public. Full text over name, brand, category path and description, best first (name
/// matches above brand, category and description matches); words are stemmed (`running`
/// finds `run`) and accents ignored (`cafe` finds `café`). `"quoted words"` must be next to
/// each other, `-word` excludes, `a or b` finds either, `word*` is a prefix; every character
/// is text (no query is a syntax error). When nothing matches the words, the products most
/// similar by trigrams answer (`matched: fuzzy`), so one wrong letter still finds the
/// product. Archived products are never found. Cursor-paginated: pass `next_cursor` as
/// `cursor` for the next page (same `q`, filters and mode). With `mode=hybrid` the full-text
/// ranking and the vector-similarity ranking of the query's words are fused (reciprocal rank
/// fusion, k = 60; `matched: hybrid`): products with every word come first, and products
/// with some or none of them still rank by similarity, within the filters and the query's
/// `-negations`. Answers are cached (`cached`, `X-Cache`) until a product changes.
#[utoipa::path(
    get,
    path = "/api/products/search",
    tag = "catalog",
    operation_id = "search_products",
    params(
        ("q" = String, Query, description = "What to look for: 1–256 characters, not blank"),
        ("category" = Option<String>, Query, description = "A category id or slug: only products in its subtree"),
        ("in_stock" = Option<bool>, Query, description = "true: only products with a variant in stock; false: only products without"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–100 (default 20)"),
        ("mode" = Option<SearchMode>, Query, description = "`text` (the default): full-text ranking with a typo fallback; `hybrid`: the full-text and vector-similarity rankings fused by reciprocal rank fusion (k = 60)"),
    ),
    responses(
        (status = 200, description = "One page of results", body = SearchResults, content_type = "application/json",
            headers(
                ("Cache-Control" = String, description = "`public, max-age=60`"),
                ("X-Cache" = String, description = "`hit` when the app's cache answered, else `miss`"),
            )),
        PublicReadErrors,
    )
)]
pub(super) async fn search_products(
    State(app): State<Arc<App>>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> AppResult<Response> {
    let params = query_params(params)?;
    let query = search_query(&params)?;
    let results = app.search_products(query).await?;
    let cached = results.cached;
    Ok(public(Json(results).into_response(), Some(cached)))
}
