//! The catalog routes: products and categories.
//!
//! Reads are public (no token; a CDN may cache them): every answer carries
//! `Cache-Control: public, max-age=60`, and a product page its `ETag` (`"{version}"`); a
//! product read whose `If-None-Match` names the current version answers 304 without a body.
//! Whether an answer came from the app's cache is in the body (`"cached": true|false`) and
//! in the `X-Cache: hit|miss` header.
//!
//! Writes need an `admin` token. `PUT`/`PATCH` of a product need `If-Match` with the `ETag`
//! the client read: without it 428 `precondition_required`, with a version that is no longer
//! current 412 `precondition_failed`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mod8_orm::{Category, NewCatalogProduct, NewCategory, ProductChanges};

use super::auth::Caller;
use super::openapi::{
    ConditionalWriteErrors, Internal, ProtectedCreateErrors, PublicReadErrors, RateLimited,
    Timeout, Unavailable, Unprocessable,
};
use super::ApiJson;
use crate::error::{AppError, AppResult};
use crate::flows::catalog::{
    listing_query, parse_tags, CategoryTree, IfMatch, Listing, ProductDocument, ProductPatch,
    ProductView,
};
use crate::App;

/// `Cache-Control` of every public catalog read.
pub const PUBLIC_CACHE_CONTROL: &str = "public, max-age=60";
/// The header saying whether the app's cache answered: `hit` or `miss`.
pub const X_CACHE: &str = "x-cache";

/// An `admin` caller: 401 without a valid token, 403 with another scope — checked before
/// the body is read, so a caller that may not write learns that first.
pub(super) struct Admin;

impl FromRequestParts<Arc<App>> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, AppError> {
        Caller::from_request_parts(parts, app)
            .await?
            .require_admin()?;
        Ok(Admin)
    }
}

/// The query string's parameters: one that cannot be decoded is a 422 naming `query`.
pub(super) fn query_params(
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> AppResult<HashMap<String, String>> {
    params
        .map(|Query(p)| p)
        .map_err(|rejection| AppError::validation("query", rejection.body_text()))
}

pub(super) fn public(mut response: Response, cached: Option<bool>) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(PUBLIC_CACHE_CONTROL),
    );
    if let Some(cached) = cached {
        headers.insert(
            X_CACHE,
            HeaderValue::from_static(if cached { "hit" } else { "miss" }),
        );
    }
    response
}

/// A product page with its `ETag`.
fn product_response(status: StatusCode, view: &ProductView) -> AppResult<Response> {
    let etag = HeaderValue::from_str(&view.etag())
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("ETag header")))?;
    let mut response = (status, Json(view)).into_response();
    response.headers_mut().insert(header::ETAG, etag);
    Ok(response)
}

/// Whether `If-None-Match` names `version` (`*` names every version).
fn none_match(headers: &HeaderMap, version: i64) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.trim() == "*" || parse_tags(v).contains(&version))
}

/// The `If-Match` of a write: required (428 without it).
fn if_match(headers: &HeaderMap) -> AppResult<IfMatch> {
    let values: Vec<&str> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return Err(AppError::PreconditionRequired(
            "this write needs If-Match with the product's ETag (read it with GET first)".into(),
        ));
    }
    Ok(IfMatch::parse(&values.join(",")))
}

/// A product page.
///
/// Public. From the app's cache when it holds the page (`cached: true`, `X-Cache: hit`),
/// else from the store (then cached). `ETag` is the product's version; `If-None-Match` naming
/// it answers 304 without a body. Archived products answer too, with `archived_at`.
#[utoipa::path(
    get,
    path = "/api/products/{id}",
    tag = "catalog",
    operation_id = "get_product",
    params(
        ("id" = Uuid, Path, description = "The product's id"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag read before: 304 when the product is still at that version"),
    ),
    responses(
        (status = 200, description = "The product page", body = ProductView, content_type = "application/json",
            headers(
                ("ETag" = String, description = "The product's version, quoted"),
                ("Cache-Control" = String, description = "`public, max-age=60`"),
                ("X-Cache" = String, description = "`hit` when the app's cache answered, else `miss`"),
            )),
        (status = 304, description = "Not modified: the product is still at the version `If-None-Match` names",
            headers(("ETag" = String, description = "The product's version, quoted"))),
        PublicReadErrors,
    )
)]
pub(super) async fn get_product(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let id = super::path::id(id, "product")?;
    let view = app.product_view(id).await?;
    if none_match(&headers, view.page.product.version) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(etag) = HeaderValue::from_str(&view.etag()) {
            response.headers_mut().insert(header::ETAG, etag);
        }
        return Ok(public(response, Some(view.cached)));
    }
    Ok(public(
        product_response(StatusCode::OK, &view)?,
        Some(view.cached),
    ))
}

/// The category tree.
///
/// Public. Every category, roots first, then by name (`parent_id` links them); with
/// `counts=true` each with the number of products (not archived) in it and below it.
#[utoipa::path(
    get,
    path = "/api/categories",
    tag = "catalog",
    operation_id = "list_categories",
    params(("counts" = Option<bool>, Query, description = "Add each category's product count")),
    responses(
        (status = 200, description = "Every category", body = CategoryTree, content_type = "application/json",
            headers(("Cache-Control" = String, description = "`public, max-age=60`"))),
        (status = 408, response = Timeout),
        (status = 422, response = Unprocessable),
        (status = 429, response = RateLimited),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list_categories(
    State(app): State<Arc<App>>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> AppResult<Response> {
    let params = query_params(params)?;
    let mut counts = false;
    for (name, value) in &params {
        match (name.as_str(), value.as_str()) {
            ("counts", "true" | "1") => counts = true,
            ("counts", "false" | "0") => counts = false,
            ("counts", _) => {
                return Err(AppError::validation("counts", "must be true or false"));
            }
            (other, _) => {
                return Err(AppError::validation(
                    other,
                    "unknown parameter: expected counts",
                ))
            }
        }
    }
    let tree = app.category_tree(counts).await?;
    Ok(public(Json(tree).into_response(), None))
}

/// One page of a category's products.
///
/// Public. The products (not archived) of the category and every category below it,
/// filtered and sorted, cursor-paginated: pass `next_cursor` as `cursor` for the next page
/// (with the same other parameters). Cached per query for a short time (`cached`,
/// `X-Cache`); any product change drops every cached page.
#[utoipa::path(
    get,
    path = "/api/categories/{id}/products",
    tag = "catalog",
    operation_id = "list_category_products",
    params(
        ("id" = Uuid, Path, description = "The category's id"),
        ("sort" = Option<String>, Query, description = "`newest` (default), `price_asc`, `price_desc` or `rating`"),
        ("min_price_cents" = Option<i64>, Query, description = "Only products whose lowest variant price is at least this"),
        ("max_price_cents" = Option<i64>, Query, description = "Only products whose lowest variant price is at most this"),
        ("in_stock" = Option<bool>, Query, description = "Only products with a variant in stock"),
        ("brand" = Option<String>, Query, description = "Only this brand"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`"),
    ),
    responses(
        (status = 200, description = "One page", body = Listing, content_type = "application/json",
            headers(
                ("Cache-Control" = String, description = "`public, max-age=60`"),
                ("X-Cache" = String, description = "`hit` when the app's cache answered, else `miss`"),
            )),
        PublicReadErrors,
    )
)]
pub(super) async fn list_category_products(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> AppResult<Response> {
    let id = super::path::id(id, "category")?;
    let params = query_params(params)?;
    let query = listing_query(&params)?;
    let listing = app.category_listing(id, query).await?;
    let cached = listing.cached;
    Ok(public(Json(listing).into_response(), Some(cached)))
}

/// Create a category.
///
/// Admin only. Under an existing parent, or a root without `parent_id`.
#[utoipa::path(
    post,
    path = "/api/categories",
    tag = "catalog",
    operation_id = "create_category",
    request_body(content = NewCategory, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The category", body = Category, content_type = "application/json"),
        ProtectedCreateErrors,
    )
)]
pub(super) async fn create_category(
    State(app): State<Arc<App>>,
    _admin: Admin,
    ApiJson(category): ApiJson<NewCategory>,
) -> AppResult<Response> {
    let category = app.create_category(category).await?;
    Ok((StatusCode::CREATED, Json(category)).into_response())
}

/// Create a product.
///
/// Admin only. With its variants (at least one; prices in cents, ISO 4217 currency, option
/// values, initial stock) and images; answers its page with its `ETag`.
#[utoipa::path(
    post,
    path = "/api/products",
    tag = "catalog",
    operation_id = "create_product",
    request_body(content = NewCatalogProduct, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The product page", body = ProductView, content_type = "application/json",
            headers(("ETag" = String, description = "The product's version, quoted"))),
        ProtectedCreateErrors,
    )
)]
pub(super) async fn create_product(
    State(app): State<Arc<App>>,
    _admin: Admin,
    ApiJson(product): ApiJson<NewCatalogProduct>,
) -> AppResult<Response> {
    let view = app.create_product(product).await?;
    product_response(StatusCode::CREATED, &view)
}

/// Replace a product's document.
///
/// Admin only; needs `If-Match` with the product's `ETag`. Replaces name, brand,
/// description, attributes and category (variants and prices stay: `PATCH` them). Answers
/// the new page with its new `ETag`.
#[utoipa::path(
    put,
    path = "/api/products/{id}",
    tag = "catalog",
    operation_id = "replace_product",
    params(
        ("id" = Uuid, Path, description = "The product's id"),
        ("If-Match" = String, Header, description = "The ETag the change is based on"),
    ),
    request_body(content = ProductDocument, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new product page", body = ProductView, content_type = "application/json",
            headers(("ETag" = String, description = "The product's new version, quoted"))),
        ConditionalWriteErrors,
    )
)]
pub(super) async fn replace_product(
    State(app): State<Arc<App>>,
    _admin: Admin,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    ApiJson(document): ApiJson<ProductDocument>,
) -> AppResult<Response> {
    let id = super::path::id(id, "product")?;
    let if_match = if_match(&headers)?;
    let view = app
        .update_product(id, &if_match, ProductChanges::from(document))
        .await?;
    product_response(StatusCode::OK, &view)
}

/// Change part of a product.
///
/// Admin only; needs `If-Match` with the product's `ETag`. Absent fields stay; `prices` sets
/// variants' prices. Answers the new page with its new `ETag`.
#[utoipa::path(
    patch,
    path = "/api/products/{id}",
    tag = "catalog",
    operation_id = "patch_product",
    params(
        ("id" = Uuid, Path, description = "The product's id"),
        ("If-Match" = String, Header, description = "The ETag the change is based on"),
    ),
    request_body(content = ProductPatch, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new product page", body = ProductView, content_type = "application/json",
            headers(("ETag" = String, description = "The product's new version, quoted"))),
        ConditionalWriteErrors,
    )
)]
pub(super) async fn patch_product(
    State(app): State<Arc<App>>,
    _admin: Admin,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<ProductPatch>,
) -> AppResult<Response> {
    let id = super::path::id(id, "product")?;
    let if_match = if_match(&headers)?;
    let view = app
        .update_product(id, &if_match, ProductChanges::from(patch))
        .await?;
    product_response(StatusCode::OK, &view)
}
