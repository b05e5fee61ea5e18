//! The shop: carts, checkout, the order life cycle and product reviews, as methods on
//! [`App`] (the HTTP handlers in `http::shop` call them).
//!
//! - Carts: one line per variant; adding a variant already in the cart merges the quantities.
//! - Checkout ([`App::checkout`]): in one SQL unit of work, the addresses given as objects are
//!   created, stock is reserved through the inventory ledger all or nothing, the order is
//!   written (the cart emptied when it was bought) and an outbox row [`ORDER_PLACED_TOPIC`]
//!   is enqueued; the relay publishes it after commit. Too little stock is a 409 naming the
//!   variant and what is available, and then nothing is written.
//! - The order life cycle ([`App::set_order_status`]): pay, ship (sells the reserved units),
//!   cancel (releases them), along [`OrderStatus::may_follow`]; another move is a 409.
//! - Reviews: whether one is a verified purchase is decided by the repository (the author
//!   has a paid or shipped order of the product), never by the client.
//!
//! After an order is placed or changes status, what is cached about its buyer is dropped and
//! the insights worker is woken to rebuild the recommendation model, as
//! [`App::place_order`] does.

use mod8_mq::domain::{OrderPlaced, OrderPlacedLine};
use mod8_orm::{
    Cart, CartLine, Checkout, NewAddress, NewReview, Order, OrderItem, OrderStatus, OrderWithItems,
    PageRequest, Review, UnitOfWork, VariantLine,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::registration::AddressInput;
use crate::error::{AppError, AppResult};
use crate::outbox::{OutboxEvent, ORDER_PLACED_TOPIC};
use crate::App;

/// Most reviews one page of `GET /api/products/{id}/reviews` returns.
pub const MAX_REVIEW_PAGE: u32 = 100;

/// A shop error from the SQL store: a conflict keeps the repository's explanation (which
/// variant is short and what it has available, which status an order is in) as a
/// [`AppError::StateConflict`]; everything else maps as every SQL error does.
fn shop_error(e: mod8_orm::Error) -> AppError {
    match e {
        mod8_orm::Error::Conflict { field, message, .. } => {
            AppError::StateConflict { field, message }
        }
        other => other.into(),
    }
}

/// `POST /api/users/{id}/cart/items` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CartItemInput {
    /// The variant (a simple product's one variant has the product's id).
    pub variant_id: Uuid,
    /// Units to add (positive; merged with what the cart already has of the variant).
    #[schema(minimum = 1)]
    pub quantity: i64,
}

/// `PUT /api/users/{id}/cart/items/{variant_id}` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantityInput {
    /// The line's new quantity (positive; remove the line with `DELETE`).
    #[schema(minimum = 1)]
    pub quantity: i64,
}

/// One line of a cart, priced at the variant's current price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CartLineView {
    /// The variant.
    pub variant_id: Uuid,
    /// Its product.
    pub product_id: Uuid,
    /// The variant's SKU.
    pub sku: String,
    /// The product's name.
    pub name: String,
    /// Units.
    pub quantity: i64,
    /// Current unit price, in cents.
    pub unit_price_cents: i64,
    /// The price's currency (ISO 4217).
    pub currency: String,
}

impl From<CartLine> for CartLineView {
    fn from(l: CartLine) -> Self {
        CartLineView {
            variant_id: l.variant_id,
            product_id: l.product_id,
            sku: l.sku,
            name: l.name,
            quantity: l.quantity,
            unit_price_cents: l.unit_price_cents,
            currency: l.currency,
        }
    }
}

/// A user's cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CartView {
    /// The user.
    pub user_id: Uuid,
    /// Its lines, by SKU.
    pub lines: Vec<CartLineView>,
    /// The sum of quantity × unit price, in cents.
    pub total_cents: i64,
}

impl CartView {
    fn of(user_id: Uuid, cart: Cart) -> Self {
        CartView {
            user_id,
            lines: cart.lines.into_iter().map(Into::into).collect(),
            total_cents: cart.total_cents,
        }
    }
}

/// An address of a checkout: the id of an existing address, or a new address (created in
/// the checkout's transaction; the city must exist in the country).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AddressRef {
    /// An existing address.
    Id(Uuid),
    /// A new address.
    New(AddressInput),
}

/// `POST /api/users/{id}/orders` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutInput {
    /// What to buy; left out, the cart is bought (and emptied with the order).
    #[serde(default)]
    pub lines: Option<Vec<CartItemInput>>,
    /// Where to ship (required).
    #[serde(default)]
    pub shipping_address: Option<AddressRef>,
    /// Where to bill; left out, the shipping address.
    #[serde(default)]
    pub billing_address: Option<AddressRef>,
}

/// One line of an order, priced when it was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderItemView {
    /// The product.
    pub product_id: Uuid,
    /// The variant bought.
    pub variant_id: Uuid,
    /// Units.
    pub quantity: i64,
    /// Unit price when the order was placed, in cents.
    pub unit_price_cents: i64,
}

impl From<OrderItem> for OrderItemView {
    fn from(i: OrderItem) -> Self {
        OrderItemView {
            product_id: i.product_id,
            variant_id: i.variant_id,
            quantity: i.quantity,
            unit_price_cents: i.unit_price_cents,
        }
    }
}

/// Where an order is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatusView {
    /// Placed, not yet paid; its units are reserved.
    Placed,
    /// Paid.
    Paid,
    /// Shipped; its units are sold.
    Shipped,
    /// Cancelled; its units were released.
    Cancelled,
}

impl From<OrderStatus> for OrderStatusView {
    fn from(s: OrderStatus) -> Self {
        match s {
            OrderStatus::Placed => OrderStatusView::Placed,
            OrderStatus::Paid => OrderStatusView::Paid,
            OrderStatus::Shipped => OrderStatusView::Shipped,
            OrderStatus::Cancelled => OrderStatusView::Cancelled,
        }
    }
}

/// An order (without its lines when it comes from a status change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    /// The order.
    pub id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// Its status.
    pub status: OrderStatusView,
    /// When it was placed.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Sum of its lines, in cents.
    pub total_cents: i64,
    /// Where it ships to.
    pub shipping_address_id: Option<Uuid>,
    /// Where it is billed to.
    pub billing_address_id: Option<Uuid>,
    /// Its lines.
    pub items: Vec<OrderItemView>,
}

impl OrderView {
    fn of(order: Order, items: Vec<OrderItem>) -> Self {
        OrderView {
            id: order.id,
            user_id: order.user_id,
            status: order.status.into(),
            created_at: order.created_at,
            total_cents: order.total_cents,
            shipping_address_id: order.shipping_address_id,
            billing_address_id: order.billing_address_id,
            items: items.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<OrderWithItems> for OrderView {
    fn from(o: OrderWithItems) -> Self {
        OrderView::of(o.order, o.items)
    }
}

/// A user's orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderList {
    /// The user.
    pub user_id: Uuid,
    /// The orders with their lines.
    pub orders: Vec<OrderView>,
}

/// A move of an order's life cycle (`POST /api/orders/{id}/pay`, `/ship`, `/cancel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAction {
    /// Placed → paid.
    Pay,
    /// Placed or paid → shipped (the reserved units are sold).
    Ship,
    /// Placed or paid → cancelled (the reserved units are released).
    Cancel,
}

impl OrderAction {
    fn status(self) -> OrderStatus {
        match self {
            OrderAction::Pay => OrderStatus::Paid,
            OrderAction::Ship => OrderStatus::Shipped,
            OrderAction::Cancel => OrderStatus::Cancelled,
        }
    }
}

/// `POST /api/products/{id}/reviews` body. The author is the caller; whether the review is a
/// verified purchase is decided by the server (a `verified_purchase` member is refused as
/// unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// 1–5.
    #[schema(minimum = 1, maximum = 5)]
    pub rating: i16,
    /// 1–200 characters.
    pub title: String,
    /// At most 10,000 characters.
    #[serde(default)]
    pub body: String,
}

/// A product review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewView {
    /// The review.
    pub id: Uuid,
    /// The product.
    pub product_id: Uuid,
    /// The author.
    pub user_id: Uuid,
    /// 1–5.
    pub rating: i16,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// Whether the author had a paid or shipped order of the product when writing it
    /// (decided by the server).
    pub verified_purchase: bool,
    /// When it was written.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Review> for ReviewView {
    fn from(r: Review) -> Self {
        ReviewView {
            id: r.id,
            product_id: r.product_id,
            user_id: r.user_id,
            rating: r.rating,
            title: r.title,
            body: r.body,
            verified_purchase: r.verified_purchase,
            created_at: r.created_at,
        }
    }
}

/// One page of a product's reviews, newest first, with the product's rating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewPage {
    /// The product.
    pub product_id: Uuid,
    /// Reviews of the product in all.
    pub review_count: u64,
    /// Their mean rating, `null` without reviews.
    pub average_rating: Option<f64>,
    /// Reviews skipped before this page.
    pub offset: u64,
    /// Most reviews on this page.
    pub limit: u32,
    /// This page.
    pub reviews: Vec<ReviewView>,
}

impl App {
    /// User `user_id`'s cart.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown user, or the SQL store failing.
    pub async fn cart(&self, user_id: Uuid) -> AppResult<CartView> {
        self.user(user_id).await?;
        let cart = self
            .call("sql.cart", "sql", async {
                self.sql.cart(user_id).await.map_err(shop_error)
            })
            .await?;
        Ok(CartView::of(user_id, cart))
    }

    /// Adds `item.quantity` units of a variant to the cart, merging with a line of the same
    /// variant; returns the cart.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown user or variant, a validation error on
    /// `quantity`, or the SQL store failing.
    pub async fn add_to_cart(&self, user_id: Uuid, item: CartItemInput) -> AppResult<CartView> {
        let cart = self
            .call("sql.add_to_cart", "sql", async {
                self.sql
                    .add_to_cart(user_id, item.variant_id, item.quantity)
                    .await
                    .map_err(shop_error)
            })
            .await?;
        Ok(CartView::of(user_id, cart))
    }

    /// Sets the quantity of the cart's line of `variant_id`; returns the cart.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown user or a variant not in the cart, a validation
    /// error on `quantity`, or the SQL store failing.
    pub async fn set_cart_quantity(
        &self,
        user_id: Uuid,
        variant_id: Uuid,
        quantity: i64,
    ) -> AppResult<CartView> {
        self.user(user_id).await?;
        let cart = self
            .call("sql.set_cart_quantity", "sql", async {
                self.sql
                    .set_cart_quantity(user_id, variant_id, quantity)
                    .await
                    .map_err(shop_error)
            })
            .await?;
        Ok(CartView::of(user_id, cart))
    }

    /// Removes the cart's line of `variant_id`.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown user or a variant not in the cart, or the SQL
    /// store failing.
    pub async fn remove_from_cart(&self, user_id: Uuid, variant_id: Uuid) -> AppResult<()> {
        self.user(user_id).await?;
        let removed = self
            .call("sql.remove_from_cart", "sql", async {
                self.sql
                    .remove_from_cart(user_id, variant_id)
                    .await
                    .map_err(shop_error)
            })
            .await?;
        if removed {
            Ok(())
        } else {
            Err(AppError::NotFound(format!("cart item {variant_id}")))
        }
    }

    /// Empties the cart; returns the (empty) cart.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown user, or the SQL store failing.
    pub async fn clear_cart(&self, user_id: Uuid) -> AppResult<CartView> {
        self.user(user_id).await?;
        self.call("sql.clear_cart", "sql", async {
            self.sql.clear_cart(user_id).await.map_err(shop_error)
        })
        .await?;
        Ok(CartView::of(user_id, Cart::default()))
    }

    /// Places an order for `user_id` from its cart or the given lines (see the module docs):
    /// addresses given as objects, the reservation, the order, the emptied cart and the
    /// outbox row of its [`OrderPlaced`] event commit together or not at all.
    ///
    /// # Errors
    ///
    /// [`AppError::StateConflict`] on `stock` naming the variant and what it has available
    /// (nothing is written then); [`AppError::NotFound`] for an unknown user, variant or
    /// address id; a validation error naming the field (`shipping_address`, `lines`, an
    /// unknown city or country, an empty cart); or the SQL store failing.
    pub async fn checkout(&self, user_id: Uuid, input: CheckoutInput) -> AppResult<OrderView> {
        self.user(user_id).await?;
        let shipping = input.shipping_address.clone().ok_or_else(|| {
            AppError::validation("shipping_address", "a checkout needs a shipping address")
        })?;
        let billing = input.billing_address.clone();
        let lines = input.lines.map(|lines| {
            lines
                .into_iter()
                .map(|l| VariantLine {
                    variant_id: l.variant_id,
                    quantity: l.quantity,
                })
                .collect::<Vec<_>>()
        });
        let uow = self.call("sql.begin", "sql", self.sql.begin()).await?;
        let placed = match self
            .call(
                "sql.checkout",
                "sql",
                checkout_in(uow.as_ref(), user_id, lines, shipping, billing),
            )
            .await
        {
            Ok(placed) => placed,
            Err(e) => {
                if let Err(rollback) = uow.rollback().await {
                    tracing::warn!(error = %rollback, "rollback after a failed checkout failed");
                }
                return Err(e);
            }
        };
        self.call("sql.commit", "sql", uow.commit()).await?;
        self.outbox.notify();
        self.orders_changed(user_id).await;
        let reserved: Vec<Uuid> = placed.items.iter().map(|i| i.variant_id).collect();
        self.search_stock_changed(&reserved).await;
        Ok(placed.into())
    }

    /// User `user_id`'s orders, newest first.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown user, or the SQL store failing.
    pub async fn orders_of(&self, user_id: Uuid) -> AppResult<OrderList> {
        self.user(user_id).await?;
        let orders = self
            .call("sql.orders_of_user", "sql", async {
                self.sql.orders_of_user(user_id).await.map_err(shop_error)
            })
            .await?;
        Ok(OrderList {
            user_id,
            orders: orders.into_iter().map(Into::into).collect(),
        })
    }

    /// The order with `id` and its lines.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown order, or the SQL store failing.
    pub async fn order(&self, id: Uuid) -> AppResult<OrderView> {
        let order = self
            .call("sql.get_order", "sql", async {
                self.sql.get_order(id).await.map_err(shop_error)
            })
            .await?;
        Ok(order.into())
    }

    /// Moves order `id` along its life cycle (`action`); returns the order. Asking for the
    /// status it already has changes nothing (a retried request succeeds).
    ///
    /// # Errors
    ///
    /// [`AppError::StateConflict`] on `status` for a move its status does not allow (paying a
    /// cancelled order, cancelling a shipped one, ...); [`AppError::NotFound`] for an unknown
    /// order; or the SQL store failing.
    pub async fn set_order_status(&self, id: Uuid, action: OrderAction) -> AppResult<OrderView> {
        let order = self
            .call("sql.set_order_status", "sql", async {
                self.sql
                    .set_order_status(id, action.status())
                    .await
                    .map_err(shop_error)
            })
            .await?;
        let user_id = order.user_id;
        let view = self.order(id).await.unwrap_or_else(|e| {
            tracing::warn!(order_id = %id, error = %e, "could not read the order back; answering without its lines");
            OrderView::of(order, Vec::new())
        });
        self.orders_changed(user_id).await;
        if action == OrderAction::Cancel {
            let released: Vec<(Uuid, i64)> = view
                .items
                .iter()
                .map(|i| (i.variant_id, i.quantity))
                .collect();
            self.search_stock_released(&released).await;
        }
        Ok(view)
    }

    /// Writes a review of `product_id` by `user_id`; the repository decides whether it is a
    /// verified purchase.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown product or user, a validation error on
    /// `rating`, `title` or `body`, [`AppError::StateConflict`] on `user_id` when the user
    /// already reviewed the product, or the SQL store failing.
    pub async fn create_review(
        &self,
        product_id: Uuid,
        user_id: Uuid,
        input: ReviewInput,
    ) -> AppResult<ReviewView> {
        let review = self
            .call("sql.create_review", "sql", async {
                self.sql
                    .create_review(NewReview {
                        product_id,
                        user_id,
                        rating: input.rating,
                        title: input.title,
                        body: input.body,
                    })
                    .await
                    .map_err(shop_error)
            })
            .await?;
        Ok(review.into())
    }

    /// One page of a product's reviews, newest first, with its rating.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown product, a validation error on `limit` (1–
    /// [`MAX_REVIEW_PAGE`]), or the SQL store failing.
    pub async fn reviews(&self, product_id: Uuid, page: PageRequest) -> AppResult<ReviewPage> {
        if page.limit == 0 || page.limit > MAX_REVIEW_PAGE {
            return Err(AppError::validation(
                "limit",
                format!("a page holds 1 to {MAX_REVIEW_PAGE} reviews"),
            ));
        }
        let (reviews, rating) = self
            .call("sql.reviews_of", "sql", async {
                self.sql.get_product(product_id).await?;
                let reviews = self.sql.reviews_of(product_id, page).await?;
                let rating = self.sql.product_rating(product_id).await?;
                Ok::<_, mod8_orm::Error>((reviews, rating))
            })
            .await?;
        Ok(ReviewPage {
            product_id,
            review_count: rating.review_count,
            average_rating: rating.average,
            offset: page.offset,
            limit: page.limit,
            reviews: reviews.into_iter().map(Into::into).collect(),
        })
    }

    /// After a committed order write: drop what is cached about the buyer and wake the
    /// worker to rebuild the recommendation model (which counts every order line).
    async fn orders_changed(&self, user_id: Uuid) {
        self.invalidate_user(user_id).await;
        self.worker.orders_changed();
    }
}

/// The id of an address of a checkout, creating it in `uow` when it is new.
async fn address_in(uow: &dyn UnitOfWork, field: &str, address: AddressRef) -> AppResult<Uuid> {
    let a = match address {
        AddressRef::Id(id) => return Ok(id),
        AddressRef::New(a) => a,
    };
    let code = mod8_orm::validate::country_code(&a.country_code).map_err(|e| match e {
        mod8_orm::Error::Validation { message, .. } => {
            AppError::validation(format!("{field}.country_code"), message)
        }
        other => other.into(),
    })?;
    match uow.country_by_code(&code).await {
        Ok(_) => {}
        Err(mod8_orm::Error::NotFound { .. }) => {
            return Err(AppError::validation(
                format!("{field}.country_code"),
                format!("unknown country {code}"),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let city = uow.find_city(a.city.trim(), &code).await?.ok_or_else(|| {
        AppError::validation(
            format!("{field}.city"),
            format!("unknown city {} in {code}", mod8_rules::echo(a.city.trim())),
        )
    })?;
    let created = uow
        .create_address(NewAddress {
            street: a.street,
            postal_code: a.postal_code,
            city_id: city.id,
        })
        .await
        .map_err(|e| match e {
            mod8_orm::Error::Validation { field: f, message } => {
                AppError::validation(format!("{field}.{f}"), message)
            }
            other => other.into(),
        })?;
    Ok(created.id)
}

/// Checkout's statements, all in `uow`: the addresses, the order, its outbox row.
async fn checkout_in(
    uow: &dyn UnitOfWork,
    user_id: Uuid,
    lines: Option<Vec<VariantLine>>,
    shipping: AddressRef,
    billing: Option<AddressRef>,
) -> AppResult<OrderWithItems> {
    let shipping_address_id = address_in(uow, "shipping_address", shipping).await?;
    let billing_address_id = match billing {
        Some(billing) => address_in(uow, "billing_address", billing).await?,
        None => shipping_address_id,
    };
    let placed = uow
        .checkout(Checkout {
            user_id,
            lines,
            shipping_address_id: Some(shipping_address_id),
            billing_address_id: Some(billing_address_id),
        })
        .await
        .map_err(shop_error)?;
    let event = OrderPlaced {
        order_id: placed.order.id,
        user_id,
        total_cents: placed.order.total_cents,
        lines: placed
            .items
            .iter()
            .map(|i| OrderPlacedLine {
                product_id: i.product_id,
                variant_id: i.variant_id,
                quantity: i.quantity,
                unit_price_cents: i.unit_price_cents,
            })
            .collect(),
    };
    let payload = OutboxEvent::new(placed.order.id.to_string(), event)
        .to_payload()
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("outbox payload")))?;
    uow.enqueue(ORDER_PLACED_TOPIC, payload).await?;
    Ok(placed)
}
