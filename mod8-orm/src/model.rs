//! The relational model: rows as they are stored, inputs for creating them, and the shapes
//! the analytics queries return. Money is always integer cents (`*_cents: i64`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A country (ISO 3166-1 alpha-2 code unique).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Country {
    /// Primary key.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// ISO 3166-1 alpha-2 code, upper case (`DE`).
    pub iso_code: String,
    /// Number of inhabitants.
    pub population: i64,
    /// Gross domestic product per inhabitant, in US cents.
    pub gdp_per_capita_cents: i64,
}

/// Input for [`crate::LocationRepository::create_country`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCountry {
    /// Display name (1–100 characters).
    pub name: String,
    /// ISO 3166-1 alpha-2 code; must be an assigned code (validated without the database).
    pub iso_code: String,
    /// Number of inhabitants (not negative).
    pub population: i64,
    /// Gross domestic product per inhabitant, in US cents (not negative).
    pub gdp_per_capita_cents: i64,
}

/// A city inside a country; its name is unique within the country.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct City {
    /// Primary key.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Region, state or province.
    pub region: String,
    /// The country it lies in.
    pub country_id: Uuid,
}

/// Input for [`crate::LocationRepository::create_city`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCity {
    /// Display name (1–100 characters).
    pub name: String,
    /// Region, state or province (may be empty).
    pub region: String,
    /// ISO code of an existing country.
    pub country_code: String,
}

/// A street address in a city.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Address {
    /// Primary key.
    pub id: Uuid,
    /// Street and number.
    pub street: String,
    /// Postal code.
    pub postal_code: String,
    /// The city it lies in.
    pub city_id: Uuid,
}

/// Input for creating an address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAddress {
    /// Street and number (1–200 characters).
    pub street: String,
    /// Postal code (1–20 characters).
    pub postal_code: String,
    /// An existing city.
    pub city_id: Uuid,
}

/// A registered user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Primary key.
    pub id: Uuid,
    /// E-mail address, stored trimmed and lower case; unique.
    pub email: String,
    /// Username; unique.
    pub username: String,
    /// Where the user lives, if known.
    pub address_id: Option<Uuid>,
    /// Profile completeness / quality score, 0–100.
    pub profile_score: f64,
    /// Whether the e-mail address was verified.
    pub is_verified: bool,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last time the user did something.
    pub last_active_at: DateTime<Utc>,
}

/// Input for [`crate::UserRepository::create_user`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewUser {
    /// E-mail address (validated, stored trimmed and lower case).
    pub email: String,
    /// Username: 1–50 characters of letters, digits, `_`, `.` and `-`.
    pub username: String,
    /// An existing address, or none.
    pub address_id: Option<Uuid>,
    /// Profile score, 0–100.
    pub profile_score: f64,
    /// Whether the e-mail address is verified.
    pub is_verified: bool,
    /// Registration time; `None` means now.
    pub created_at: Option<DateTime<Utc>>,
    /// Last activity; `None` means the registration time.
    pub last_active_at: Option<DateTime<Utc>>,
}

impl NewUser {
    /// A user with this e-mail and username, no address, score 0, unverified, created now.
    pub fn new(email: impl Into<String>, username: impl Into<String>) -> Self {
        NewUser {
            email: email.into(),
            username: username.into(),
            address_id: None,
            profile_score: 0.0,
            is_verified: false,
            created_at: None,
            last_active_at: None,
        }
    }
}

/// Changes for [`crate::UserRepository::update_user`]; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserUpdate {
    /// New e-mail address.
    pub email: Option<String>,
    /// New username.
    pub username: Option<String>,
    /// New address: `Some(None)` clears it.
    pub address_id: Option<Option<Uuid>>,
    /// New profile score.
    pub profile_score: Option<f64>,
    /// New verification state.
    pub is_verified: Option<bool>,
    /// New last-activity time.
    pub last_active_at: Option<DateTime<Utc>>,
}

/// A user with the whole Address → City → Country chain, loaded in one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserWithLocation {
    /// The user.
    pub user: User,
    /// Where they live, when known.
    pub location: Option<Location>,
}

/// An address with its city and country.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// The address.
    pub address: Address,
    /// Its city.
    pub city: City,
    /// The city's country.
    pub country: Country,
}

/// A country with all of its cities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountryWithCities {
    /// The country.
    pub country: Country,
    /// Its cities, by name.
    pub cities: Vec<City>,
}

/// Offset pagination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return (1–1000).
    pub limit: u32,
}

impl PageRequest {
    /// The first `limit` rows.
    pub fn first(limit: u32) -> Self {
        PageRequest { offset: 0, limit }
    }

    /// The page after this one. The offset saturates at `u64::MAX` rather than overflowing
    /// (a repository then rejects it as too large).
    pub fn next(self) -> Self {
        PageRequest {
            offset: self.offset.saturating_add(u64::from(self.limit)),
            limit: self.limit,
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows on this page.
    pub items: Vec<T>,
    /// The number of rows on all pages.
    pub total: u64,
    /// The request that produced this page.
    pub request: PageRequest,
}

impl<T> Page<T> {
    /// Whether rows remain after this page.
    pub fn has_more(&self) -> bool {
        self.request.offset + (self.items.len() as u64) < self.total
    }
}

/// Summary statistics over all users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserStats {
    /// Number of users.
    pub count: u64,
    /// Number of verified users.
    pub verified: u64,
    /// `verified / count` (0 when there are no users).
    pub verified_share: f64,
    /// Lowest profile score.
    pub min_profile_score: Option<f64>,
    /// Mean profile score.
    pub avg_profile_score: Option<f64>,
    /// Highest profile score.
    pub max_profile_score: Option<f64>,
}

/// A user's place in the activity ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct UserActivityRank {
    /// The user.
    pub user_id: Uuid,
    /// Their username.
    pub username: String,
    /// Orders placed (cancelled ones excluded).
    pub orders: i64,
    /// Last activity.
    pub last_active_at: DateTime<Utc>,
    /// `RANK()` by orders, then recency (1 = most active; ties share a rank).
    #[sqlx(rename = "activity_rank")]
    pub rank: i64,
    /// `PERCENT_RANK()` on the same ordering (0 = most active).
    pub percent_rank: f64,
}

/// Per-country statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountryStats {
    /// The country.
    pub country: Country,
    /// Users living there.
    pub users: u64,
    /// Cities recorded there.
    pub cities: u64,
    /// Mean profile score of its users.
    pub avg_profile_score: Option<f64>,
    /// Users per million inhabitants (`None` when the population is 0).
    pub users_per_million: Option<f64>,
}

/// How many users live in one country.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountryDistribution {
    /// ISO code.
    pub iso_code: String,
    /// Country name.
    pub country: String,
    /// Users living there.
    pub users: u64,
    /// Share of all users that have an address (0–1).
    pub share: f64,
}

/// Users who registered in one calendar month (UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    /// `YYYY-MM`.
    pub month: String,
    /// Users registered that month.
    pub users: u64,
    /// Share of them verified (0–1).
    pub verified_share: f64,
    /// Share of them active since the `active_since` time given to the query (0–1).
    pub active_share: f64,
    /// Mean profile score.
    pub avg_profile_score: f64,
    /// Orders they placed (cancelled ones excluded).
    pub orders: u64,
}

/// A user ranked by what they spent or by their profile score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HighValueUser {
    /// The user.
    pub user_id: Uuid,
    /// Their username.
    pub username: String,
    /// Their e-mail address.
    pub email: String,
    /// Their profile score.
    pub profile_score: f64,
    /// Orders placed (cancelled ones excluded).
    pub orders: u64,
    /// Total spent, in cents (cancelled orders excluded).
    pub total_spent_cents: i64,
}

/// A product in the catalogue, seen through its default variant (the first by position): a
/// simple product has exactly one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Product {
    /// Primary key.
    pub id: Uuid,
    /// The product's code; unique among products (each variant has its own SKU too; a
    /// simple product's one variant shares this one).
    pub sku: String,
    /// Display name.
    pub name: String,
    /// The name of its category (`books`, `garden`, ...).
    pub category: String,
    /// The default variant's unit price in cents.
    pub price_cents: i64,
    /// Units of the default variant available: on hand minus reserved by open orders.
    pub stock: i64,
}

/// Input for [`crate::ProductRepository::create_product`]: a simple product (one variant,
/// priced in euro cents), in a root category found or created by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewProduct {
    /// Stock-keeping unit (1–64 characters).
    pub sku: String,
    /// Display name (1–200 characters).
    pub name: String,
    /// Category (1–100 characters).
    pub category: String,
    /// Unit price in cents (not negative).
    pub price_cents: i64,
    /// Units in stock (not negative).
    pub stock: i64,
}

/// The life cycle of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Placed, not yet paid.
    Placed,
    /// Paid.
    Paid,
    /// Shipped to the customer.
    Shipped,
    /// Cancelled; excluded from spend and popularity.
    Cancelled,
}

impl OrderStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::Placed,
        OrderStatus::Paid,
        OrderStatus::Shipped,
        OrderStatus::Cancelled,
    ];

    /// Whether an order in this status is a purchase for customer-value models
    /// ([`crate::AnalyticsRepository::customer_rfm`]): money changed hands, so `Paid` and
    /// `Shipped` are; `Placed` (not paid yet, it may never be) and `Cancelled` are not.
    pub fn is_purchase(self) -> bool {
        matches!(self, OrderStatus::Paid | OrderStatus::Shipped)
    }

    /// The statuses an order may move to this one from: an order is paid once placed, shipped
    /// once placed or paid (shipping sells the reserved stock), cancelled while placed or paid
    /// (which releases the reserved stock). Nothing comes back to `Placed`, nothing leaves
    /// `Cancelled`, and a shipped order is not cancelled (it is returned).
    pub fn may_follow(self) -> &'static [OrderStatus] {
        match self {
            OrderStatus::Placed => &[],
            OrderStatus::Paid => &[OrderStatus::Placed],
            OrderStatus::Shipped | OrderStatus::Cancelled => {
                &[OrderStatus::Placed, OrderStatus::Paid]
            }
        }
    }

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OrderStatus {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "placed" => Ok(OrderStatus::Placed),
            "paid" => Ok(OrderStatus::Paid),
            "shipped" => Ok(OrderStatus::Shipped),
            "cancelled" => Ok(OrderStatus::Cancelled),
            other => Err(crate::Error::validation(
                "status",
                format!("unknown order status {other:?}"),
            )),
        }
    }
}

impl TryFrom<String> for OrderStatus {
    type Error = crate::Error;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// An order header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Order {
    /// Primary key.
    pub id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// Where it is in its life cycle.
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    /// Sum of its items, in cents.
    pub total_cents: i64,
    /// Where it ships to, if given.
    pub shipping_address_id: Option<Uuid>,
    /// Where it is billed to, if given.
    pub billing_address_id: Option<Uuid>,
}

/// One line of an order, priced when the order was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct OrderItem {
    /// The order.
    pub order_id: Uuid,
    /// The product.
    pub product_id: Uuid,
    /// The variant of the product sold.
    pub variant_id: Uuid,
    /// Units bought (positive).
    pub quantity: i64,
    /// Unit price at the time of the order, in cents.
    pub unit_price_cents: i64,
}

/// An order with its items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderWithItems {
    /// The header.
    pub order: Order,
    /// Its lines.
    pub items: Vec<OrderItem>,
}

/// One line of [`crate::OrderRepository::place_order`]'s input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product.
    pub product_id: Uuid,
    /// Units (positive).
    pub quantity: i64,
}

/// Input for [`crate::OrderRepository::place_order`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOrder {
    /// The buyer.
    pub user_id: Uuid,
    /// What they buy (at least one line; one line per product).
    pub lines: Vec<OrderLine>,
    /// When it was placed; `None` means now.
    pub created_at: Option<DateTime<Utc>>,
}

/// One product bought by a user, for purchase history and recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Purchase {
    /// The order.
    pub order_id: Uuid,
    /// When it was placed.
    pub ordered_at: DateTime<Utc>,
    /// The product.
    pub product_id: Uuid,
    /// Its SKU.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its category.
    pub category: String,
    /// Units bought.
    pub quantity: i64,
    /// Unit price paid, in cents.
    pub unit_price_cents: i64,
}

/// How well a product sells (cancelled orders excluded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ProductPopularity {
    /// The product.
    pub product_id: Uuid,
    /// Its SKU.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its category.
    pub category: String,
    /// Units sold.
    pub units_sold: i64,
    /// Orders containing it.
    pub orders: i64,
    /// Distinct buyers.
    pub buyers: i64,
    /// Revenue in cents.
    pub revenue_cents: i64,
}

/// A message waiting in the transactional outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct OutboxMessage {
    /// Primary key (also a natural idempotency key for consumers).
    pub id: Uuid,
    /// Routing topic or message kind (`user.registered`).
    pub topic: String,
    /// The message body.
    #[sqlx(json)]
    pub payload: serde_json::Value,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it was marked sent, if it was.
    pub sent_at: Option<DateTime<Utc>>,
    /// How many times it was claimed for sending.
    pub attempts: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_saturates() {
        assert_eq!(PageRequest::first(10).next().next().offset, 20);
        let last = PageRequest {
            offset: u64::MAX - 3,
            limit: 10,
        };
        assert_eq!(last.next().offset, u64::MAX);
    }
}
