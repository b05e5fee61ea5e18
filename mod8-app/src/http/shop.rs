//! The shop's routes: carts, checkout and orders of a user, the order life cycle, and product
//! reviews. The logic lives in [`crate::flows::shop`]; here are who may call what, the paths
//! and the documented answers.
//!
//! | route | who may call it |
//! |---|---|
//! | `GET`/`DELETE /api/users/{id}/cart`, `POST /api/users/{id}/cart/items`, `PUT`/`DELETE /api/users/{id}/cart/items/{variant_id}` | the user itself, `admin` |
//! | `GET`/`POST /api/users/{id}/orders` | the user itself, `admin` |
//! | `POST /api/orders/{id}/pay`, `/cancel` | the order's buyer, `admin` |
//! | `POST /api/orders/{id}/ship` | `admin` |
//! | `POST /api/products/{id}/reviews` | a `user` token (the author); not `admin` or `service` |
//! | `GET /api/products/{id}/reviews` | anyone (public) |

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mod8_orm::PageRequest;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::auth::{AuthError, Caller, Scope};
use super::openapi::{
    ProtectedCreateErrors, ProtectedReadErrors, ProtectedWriteErrors, PublicReadErrors,
    TransitionErrors,
};
use super::{path, ApiJson};
use crate::error::{AppError, AppResult};
use crate::flows::shop::{
    CartItemInput, CartView, CheckoutInput, OrderAction, OrderList, OrderView, QuantityInput,
    ReviewInput, ReviewPage, ReviewView,
};
use crate::App;

/// The user a `user` token speaks for (a review's author), or 403 for any other scope.
fn author(caller: &Caller) -> Result<Uuid, AuthError> {
    match (caller.scope(), caller.0.sub.parse::<Uuid>()) {
        (Scope::User, Ok(id)) => Ok(id),
        _ => Err(AuthError::Forbidden(
            "reviews are written with the author's own user token".into(),
        )),
    }
}

/// The buyer of order `id` or an admin may change it; anyone else is refused (403) — before
/// the order's existence is revealed to a caller who is neither.
async fn may_change_order(app: &App, caller: &Caller, id: Uuid) -> AppResult<()> {
    if caller.scope() == Scope::Admin {
        return Ok(());
    }
    if caller.scope() != Scope::User {
        return Err(AuthError::Forbidden("this token may not change orders".into()).into());
    }
    match app.order(id).await {
        Ok(order) => Ok(caller.may_read_user(order.user_id)?),
        Err(AppError::NotFound(_)) => {
            Err(AuthError::Forbidden(format!("this token may not change order {id}")).into())
        }
        Err(e) => Err(e),
    }
}

/// A user's cart.
///
/// Priced at the variants' current prices.
#[utoipa::path(
    get,
    path = "/api/users/{id}/cart",
    tag = "shop",
    operation_id = "get_cart",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cart", body = CartView, content_type = "application/json"),
        ProtectedReadErrors,
    )
)]
pub(super) async fn get_cart(
    State(app): State<Arc<App>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> AppResult<Response> {
    let id = path::id(id, "user")?;
    caller.may_read_user(id)?;
    Ok(Json(app.cart(id).await?).into_response())
}

/// Empty a user's cart.
#[utoipa::path(
    delete,
    path = "/api/users/{id}/cart",
    tag = "shop",
    operation_id = "clear_cart",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The (empty) cart", body = CartView, content_type = "application/json"),
        ProtectedReadErrors,
    )
)]
pub(super) async fn clear_cart(
    State(app): State<Arc<App>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> AppResult<Response> {
    let id = path::id(id, "user")?;
    caller.may_read_user(id)?;
    Ok(Json(app.clear_cart(id).await?).into_response())
}

/// Add a variant to a user's cart.
///
/// Adding a variant already in the cart adds to its quantity.
#[utoipa::path(
    post,
    path = "/api/users/{id}/cart/items",
    tag = "shop",
    operation_id = "add_cart_item",
    params(("id" = Uuid, Path, description = "The user's id")),
    request_body(content = CartItemInput, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cart", body = CartView, content_type = "application/json"),
        ProtectedWriteErrors,
    )
)]
pub(super) async fn add_cart_item(
    State(app): State<Arc<App>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    ApiJson(item): ApiJson<CartItemInput>,
) -> AppResult<Response> {
    let id = path::id(id, "user")?;
    caller.may_read_user(id)?;
    Ok(Json(app.add_to_cart(id, item).await?).into_response())
}

/// Set the quantity of a line of a user's cart.
#[utoipa::path(
    put,
    path = "/api/users/{id}/cart/items/{variant_id}",
    tag = "shop",
    operation_id = "set_cart_item",
    params(
        ("id" = Uuid, Path, description = "The user's id"),
        ("variant_id" = Uuid, Path, description = "The variant of the line"),
    ),
    request_body(content = QuantityInput, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cart", body = CartView, content_type = "application/json"),
        ProtectedWriteErrors,
    )
)]
pub(super) async fn set_cart_item(
    State(app): State<Arc<App>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    ApiJson(input): ApiJson<QuantityInput>,
) -> AppResult<Response> {
    let (id, variant_id) = path::two_ids(path, ("user", "variant_id", "variant"))?;
    caller.may_read_user(id)?;
    Ok(Json(
        app.set_cart_quantity(id, variant_id, input.quantity)
            .await?,
    )
    .into_response())
}

/// Remove a line from a user's cart.
#[utoipa::path(
    delete,
    path = "/api/users/{id}/cart/items/{variant_id}",
    tag = "shop",
    operation_id = "remove_cart_item",
    params(
        ("id" = Uuid, Path, description = "The user's id"),
        ("variant_id" = Uuid, Path, description = "The variant of the line"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        ProtectedReadErrors,
    )
)]
pub(super) async fn remove_cart_item(
    State(app): State<Arc<App>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> AppResult<Response> {
    let (id, variant_id) = path::two_ids(path, ("user", "variant_id", "variant"))?;
    caller.may_read_user(id)?;
    app.remove_from_cart(id, variant_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A user's orders.
///
/// Newest first, with their lines.
#[utoipa::path(
    get,
    path = "/api/users/{id}/orders",
    tag = "shop",
    operation_id = "list_orders",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The orders", body = OrderList, content_type = "application/json"),
        ProtectedReadErrors,
    )
)]
pub(super) async fn list_orders(
    State(app): State<Arc<App>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> AppResult<Response> {
    let id = path::id(id, "user")?;
    caller.may_read_user(id)?;
    Ok(Json(app.orders_of(id).await?).into_response())
}

/// Place an order.
///
/// From the cart (no `lines`; the cart is emptied with the order) or from the given `lines`.
/// Stock is reserved all or nothing: when a variant is short the answer is 409 on `stock`
/// naming it and what it has available, and nothing is written. The `order.placed` event is
/// published after commit.
#[utoipa::path(
    post,
    path = "/api/users/{id}/orders",
    tag = "shop",
    operation_id = "place_order",
    params(("id" = Uuid, Path, description = "The user's id")),
    request_body(content = CheckoutInput, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The order", body = OrderView, content_type = "application/json"),
        ProtectedCreateErrors,
    )
)]
pub(super) async fn place_order(
    State(app): State<Arc<App>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    ApiJson(input): ApiJson<CheckoutInput>,
) -> AppResult<Response> {
    let id = path::id(id, "user")?;
    caller.may_read_user(id)?;
    let order = app.checkout(id, input).await?;
    Ok((StatusCode::CREATED, Json(order)).into_response())
}

async fn change_order(
    app: &App,
    caller: &Caller,
    id: Result<Path<String>, PathRejection>,
    action: OrderAction,
) -> AppResult<Response> {
    let id = path::id(id, "order")?;
    if action == OrderAction::Ship {
        caller.require_admin()?;
    } else {
        may_change_order(app, caller, id).await?;
    }
    Ok(Json(app.set_order_status(id, action).await?).into_response())
}

/// Pay an order.
///
/// A placed order becomes paid; paying a paid order changes nothing; any other status is 409
/// on `status`.
#[utoipa::path(
    post,
    path = "/api/orders/{id}/pay",
    tag = "shop",
    operation_id = "pay_order",
    params(("id" = Uuid, Path, description = "The order's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = OrderView, content_type = "application/json"),
        TransitionErrors,
    )
)]
pub(super) async fn pay_order(
    State(app): State<Arc<App>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> AppResult<Response> {
    change_order(&app, &caller, id, OrderAction::Pay).await
}

/// Ship an order (admin).
///
/// A placed or paid order becomes shipped and its reserved units are sold; shipping a
/// shipped order changes nothing; a cancelled one is 409 on `status`.
#[utoipa::path(
    post,
    path = "/api/orders/{id}/ship",
    tag = "shop",
    operation_id = "ship_order",
    params(("id" = Uuid, Path, description = "The order's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = OrderView, content_type = "application/json"),
        TransitionErrors,
    )
)]
pub(super) async fn ship_order(
    State(app): State<Arc<App>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> AppResult<Response> {
    change_order(&app, &caller, id, OrderAction::Ship).await
}

/// Cancel an order.
///
/// A placed or paid order becomes cancelled and its reserved units are released; cancelling
/// a cancelled order changes nothing; a shipped one is 409 on `status`.
#[utoipa::path(
    post,
    path = "/api/orders/{id}/cancel",
    tag = "shop",
    operation_id = "cancel_order",
    params(("id" = Uuid, Path, description = "The order's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = OrderView, content_type = "application/json"),
        TransitionErrors,
    )
)]
pub(super) async fn cancel_order(
    State(app): State<Arc<App>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> AppResult<Response> {
    change_order(&app, &caller, id, OrderAction::Cancel).await
}

/// Review a product.
///
/// The author is the token's user; `verified_purchase` is decided by the server (the author
/// has a paid or shipped order of the product). One review per user and product: a second
/// is 409 on `user_id`.
#[utoipa::path(
    post,
    path = "/api/products/{id}/reviews",
    tag = "shop",
    operation_id = "create_review",
    params(("id" = Uuid, Path, description = "The product's id")),
    request_body(content = ReviewInput, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The review", body = ReviewView, content_type = "application/json"),
        ProtectedCreateErrors,
    )
)]
pub(super) async fn create_review(
    State(app): State<Arc<App>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    ApiJson(input): ApiJson<ReviewInput>,
) -> AppResult<Response> {
    let product_id = path::id(id, "product")?;
    let user_id = author(&caller)?;
    let review = app.create_review(product_id, user_id, input).await?;
    Ok((StatusCode::CREATED, Json(review)).into_response())
}

/// The page of `GET /api/products/{id}/reviews`.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReviewsQuery {
    /// Reviews to skip (default 0).
    #[serde(default)]
    pub offset: u64,
    /// Reviews to return, 1–100 (default 20).
    #[serde(default = "default_review_limit")]
    #[param(minimum = 1, maximum = 100)]
    pub limit: u32,
}

fn default_review_limit() -> u32 {
    20
}

/// A product's reviews.
///
/// Public. Newest first, paged, with the product's review count and mean rating.
#[utoipa::path(
    get,
    path = "/api/products/{id}/reviews",
    tag = "shop",
    operation_id = "list_reviews",
    params(("id" = Uuid, Path, description = "The product's id"), ReviewsQuery),
    responses(
        (status = 200, description = "One page of reviews", body = ReviewPage, content_type = "application/json"),
        PublicReadErrors,
    )
)]
pub(super) async fn list_reviews(
    State(app): State<Arc<App>>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<ReviewsQuery>, QueryRejection>,
) -> AppResult<Response> {
    let product_id = path::id(id, "product")?;
    let Query(query) =
        query.map_err(|rejection| AppError::validation("query", rejection.body_text()))?;
    let page = PageRequest {
        offset: query.offset,
        limit: query.limit,
    };
    Ok(Json(app.reviews(product_id, page).await?).into_response())
}
