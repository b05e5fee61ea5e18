//! The similarity route: `GET /api/products/{id}/similar`, public like the other product
//! reads (`Cache-Control: public, max-age=60`, `X-Cache: hit|miss`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::catalog::{public, query_params};
use super::openapi::PublicReadErrors;
use super::path;
use crate::error::AppResult;
use crate::flows::similar::{similar_query, SimilarProducts};
use crate::App;

/// Products like this one.
///
/// Its nearest neighbours by embedding (cosine distance, nearest first): never the product
/// itself nor an archived product. With filters, still `k` products when that many match.
#[utoipa::path(
    get,
    path = "/api/products/{id}/similar",
    tag = "catalog",
    operation_id = "similar_products",
    params(
        ("id" = Uuid, Path, description = "The product's id"),
        ("k" = Option<u32>, Query, description = "How many, 1–100 (default 10)"),
        ("category" = Option<Uuid>, Query, description = "Only products in this category or below it"),
        ("in_stock" = Option<bool>, Query, description = "`true`: only products with a variant in stock; `false`: only products without"),
    ),
    responses(
        (status = 200, description = "The nearest products", body = SimilarProducts, content_type = "application/json",
            headers(
                ("Cache-Control" = String, description = "`public, max-age=60`"),
                ("X-Cache" = String, description = "`hit` when the app's cache answered, else `miss`"),
            )),
        PublicReadErrors,
    )
)]
pub(super) async fn similar_products(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> AppResult<Response> {
    let id = path::id(id, "product")?;
    let params = query_params(params)?;
    let query = similar_query(id, &params)?;
    let answer = app.similar_products(query).await?;
    let cached = answer.cached;
    Ok(public(Json(answer).into_response(), Some(cached)))
}
