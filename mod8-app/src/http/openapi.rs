//! The API's published contract: an OpenAPI 3.1 document generated from the code (the
//! handlers' `#[utoipa::path]` annotations and the request and response types' `ToSchema`
//! derives), served at `GET /openapi.json`.
//!
//! Every error response is documented with [`ErrorBody`], the body every error of the API
//! carries; the reusable responses ([`BadRequest`], [`Unauthorized`], ...) name the status
//! and say when it happens. Operations that need a token name the security scheme `bearer`
//! (HTTP bearer, JWT); `/healthz`, `/openapi.json`, registration and the catalog reads are
//! public.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Type};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{catalog, handlers, live, search, shop, similar};

/// The body of every error response: `{"error": {"code", "message", "field"?, "request_id"?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` object of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable, machine-readable code.
    pub code: ErrorCode,
    /// What was wrong, for a person (an internal error says only `internal error`).
    pub message: String,
    /// The offending field (`email`, `address.city`, `body`, `id`, ...), on validation
    /// errors and conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id (the `x-request-id` response header), on internal errors: quote it
    /// when reporting one, the cause is logged under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The codes an [`ErrorDetail`] can carry, with the status each comes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body could not be read (malformed JSON, not `application/json`).
    BadRequest,
    /// 401: no valid bearer token.
    Unauthorized,
    /// 403: the token does not allow this (another user's resource, a missing scope).
    Forbidden,
    /// 404: the user (or route) does not exist.
    NotFound,
    /// 405: the route does not take this method.
    MethodNotAllowed,
    /// 408: the request took too long and was abandoned.
    Timeout,
    /// 409: a unique value (`field`) is already taken.
    Conflict,
    /// 412: `If-Match` names a version that is no longer current.
    PreconditionFailed,
    /// 428: the write needs `If-Match` and came without it.
    PreconditionRequired,
    /// 413: the body is larger than the limit.
    PayloadTooLarge,
    /// 422: the input was readable but not valid; `field` names what.
    Validation,
    /// 429: too many requests; the `Retry-After` header says when to come back.
    RateLimited,
    /// 500: an internal error; `request_id` names the request.
    Internal,
    /// 501: the backend in use cannot do this.
    Unsupported,
    /// 503: a dependency is down; retrying may succeed.
    Unavailable,
}

/// A reusable error response: its description, with the [`ErrorBody`] as its JSON content.
fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

/// Reusable error responses (`#/components/responses/<name>`), one per status.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => $description:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error_response($description).build().into())
            }
        }
    )*};
}

error_responses! {
    /// 400 `bad_request`.
    BadRequest => "The body could not be read: malformed JSON, or not `application/json` (code `bad_request`).";
    /// 401 `unauthorized`.
    Unauthorized => "No valid bearer token (code `unauthorized`).";
    /// 403 `forbidden`.
    Forbidden => "The token does not allow this: another user's resource, or a scope it lacks (code `forbidden`).";
    /// 404 `not_found`.
    NotFound => "The user does not exist (code `not_found`).";
    /// 408 `timeout`.
    Timeout => "The request took too long and was abandoned (code `timeout`).";
    /// 409 `conflict`.
    Conflict => "A unique value is already taken, or the request conflicts with the current state (too little `stock`, an order `status` that does not allow the move); `field` names which (code `conflict`).";
    /// 413 `payload_too_large`.
    PayloadTooLarge => "The body is larger than 64 KiB (code `payload_too_large`).";
    /// 422 `validation`.
    Unprocessable => "The input was readable but not valid; `field` names what (code `validation`).";
    /// 412 `precondition_failed`.
    PreconditionFailed => "`If-Match` names a version that is no longer current: read the resource again and retry with its `ETag` (code `precondition_failed`).";
    /// 428 `precondition_required`.
    PreconditionRequired => "The write needs `If-Match` with the resource's `ETag` (code `precondition_required`).";
    /// 500 `internal`.
    Internal => "An internal error; the cause is logged under `request_id`, never sent (code `internal`).";
    /// 503 `unavailable`.
    Unavailable => "A dependency is down or failed in a way that retrying may fix (code `unavailable`).";
}

/// Sets of error responses that operations of one kind share, listed in an operation's
/// `responses(...)` after its success responses; each status refers to the reusable
/// response above (`#/components/responses/<name>`).
macro_rules! error_sets {
    ($($(#[$doc:meta])* $name:ident => [$($status:literal $response:ident),* $(,)?];)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
                [$(($status, stringify!($response))),*]
                    .into_iter()
                    .map(|(status, name)| {
                        (status.to_owned(), RefOr::Ref(Ref::from_response_name(name)))
                    })
                    .collect()
            }
        }
    )*};
}

error_sets! {
    /// A public read: 404, 408, 422, 429, 500, 503.
    PublicReadErrors => ["404" NotFound, "408" Timeout, "422" Unprocessable,
        "429" RateLimited, "500" Internal, "503" Unavailable];
    /// A read that needs a token: a public read's, and 401, 403.
    ProtectedReadErrors => ["401" Unauthorized, "403" Forbidden, "404" NotFound,
        "408" Timeout, "422" Unprocessable, "429" RateLimited, "500" Internal,
        "503" Unavailable];
    /// A move of an order's status: a protected read's, and 409.
    TransitionErrors => ["401" Unauthorized, "403" Forbidden, "404" NotFound,
        "408" Timeout, "409" Conflict, "422" Unprocessable, "429" RateLimited,
        "500" Internal, "503" Unavailable];
    /// A write with a JSON body that needs a token: a protected read's, and 400, 413.
    ProtectedWriteErrors => ["400" BadRequest, "401" Unauthorized, "403" Forbidden,
        "404" NotFound, "408" Timeout, "413" PayloadTooLarge, "422" Unprocessable,
        "429" RateLimited, "500" Internal, "503" Unavailable];
    /// A protected write that creates something unique: a protected write's, and 409.
    ProtectedCreateErrors => ["400" BadRequest, "401" Unauthorized, "403" Forbidden,
        "404" NotFound, "408" Timeout, "409" Conflict, "413" PayloadTooLarge,
        "422" Unprocessable, "429" RateLimited, "500" Internal, "503" Unavailable];
    /// A protected write that needs `If-Match`: a protected write's, and 412, 428.
    ConditionalWriteErrors => ["400" BadRequest, "401" Unauthorized, "403" Forbidden,
        "404" NotFound, "408" Timeout, "412" PreconditionFailed, "413" PayloadTooLarge,
        "422" Unprocessable, "428" PreconditionRequired, "429" RateLimited,
        "500" Internal, "503" Unavailable];
}

/// 429 `rate_limited`, with the `Retry-After` header.
#[derive(Debug, Clone, Copy)]
pub struct RateLimited;

impl<'r> utoipa::ToResponse<'r> for RateLimited {
    fn response() -> (&'r str, RefOr<Response>) {
        let retry_after = HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            ))
            .description(Some("Seconds to wait before trying again."))
            .build();
        let response = error_response("Too many requests (code `rate_limited`).")
            .header("Retry-After", retry_after)
            .build();
        ("RateLimited", response.into())
    }
}

/// Adds the `bearer` security scheme (HTTP bearer, JWT) the protected operations name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT (HS256) in `Authorization: Bearer <token>`, with scope `user` \
                         (its own resources), `service` (events for any user) or `admin` \
                         (insights, metrics, issuing tokens).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of the mod8 HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mod8 API",
        description = "Registration, real-time analytics and personalisation. Every error \
                       response carries the body `ErrorBody`.",
    ),
    paths(
        handlers::register,
        handlers::record_event,
        handlers::recommendations,
        handlers::profile,
        handlers::insights,
        handlers::issue_token,
        handlers::metrics,
        handlers::healthz,
        handlers::openapi,
        // The shop.
        shop::get_cart,
        shop::clear_cart,
        shop::add_cart_item,
        shop::set_cart_item,
        shop::remove_cart_item,
        shop::list_orders,
        shop::place_order,
        shop::pay_order,
        shop::ship_order,
        shop::cancel_order,
        shop::create_review,
        shop::list_reviews,
        // The catalog.
        catalog::get_product,
        catalog::replace_product,
        catalog::patch_product,
        catalog::create_product,
        catalog::list_categories,
        catalog::create_category,
        catalog::list_category_products,
        // The live dashboard.
        live::live,
        live::dashboard,
        // Search.
        search::search_products,
        // Similarity.
        similar::similar_products,
    ),
    components(
        schemas(
            ErrorBody,
            ErrorDetail,
            ErrorCode,
            // The `data` of every `GET /api/live` event.
            crate::live_feed::LiveFrame,
            // The search route's `mode` parameter.
            mod8_orm::SearchMode,
        ),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Timeout,
            Conflict,
            PayloadTooLarge,
            Unprocessable,
            RateLimited,
            Internal,
            Unavailable,
            PreconditionFailed,
            PreconditionRequired,
            live::LiveSubscribersFull,
        ),
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "users", description = "Registration, recommendations and profiles"),
        (name = "events", description = "Recording what users do"),
        (name = "insights", description = "The segment report"),
        (name = "operations", description = "Health, metrics and this document"),
        (name = "shop", description = "Carts, checkout, the order life cycle and product reviews"),
        (name = "catalog", description = "Products and categories: public reads, admin writes"),
    ),
)]
pub struct ApiDoc;

/// The document, as served at `GET /openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as JSON, built once.
pub(super) fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        // Serializing plain maps and strings cannot fail; an empty object would be served
        // rather than a panic if it ever did.
        document().to_json().unwrap_or_else(|_| "{}".to_owned())
    })
}
