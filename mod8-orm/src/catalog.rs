//! The catalog's types: the category tree, products with their variants and images, what a
//! product page shows, and the paged, filtered listing of a category.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// A node of the category tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Category {
    /// Primary key.
    pub id: Uuid,
    /// The parent category; `None` for a root.
    pub parent_id: Option<Uuid>,
    /// URL name, unique across the tree (`garden-tools`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Input for [`crate::CatalogRepository::create_category`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewCategory {
    /// The parent; `None` makes a root.
    pub parent_id: Option<Uuid>,
    /// 1–100 characters `a-z`, `0-9` and `-`, unique.
    pub slug: String,
    /// 1–200 characters.
    pub name: String,
}

/// A category of a subtree with how many products (not archived) it and its descendants hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCount {
    /// The category.
    pub category: Category,
    /// Levels below the subtree's root (0 for the root itself).
    pub depth: u32,
    /// Products in this category and every category below it.
    pub products: u64,
}

/// A catalog product (its variants, images, stock and rating are in [`ProductPage`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogProduct {
    /// Primary key.
    pub id: Uuid,
    /// The product's code, unique among products.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Its category.
    pub category_id: Uuid,
    /// The brand, if any.
    pub brand: Option<String>,
    /// Free text.
    pub description: String,
    /// Free-form attributes (a JSON object).
    #[sqlx(json)]
    pub attributes: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Incremented by every update: the optimistic-concurrency token an update must name.
    pub version: i64,
    /// When it was archived: archived products leave listings, orders keep reading them.
    pub archived_at: Option<DateTime<Utc>>,
}

/// One purchasable variant of a product (a size, a colour, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Variant {
    /// Primary key.
    pub id: Uuid,
    /// The product.
    pub product_id: Uuid,
    /// Stock-keeping unit, unique among variants.
    pub sku: String,
    /// Option values (`{"size": "M", "colour": "blue"}`).
    #[sqlx(json)]
    pub options: BTreeMap<String, String>,
    /// Unit price in the currency's minor unit (cents).
    pub price_cents: i64,
    /// ISO 4217 code (`EUR`).
    pub currency: String,
    /// Order among the product's variants (the first is the default).
    pub position: i32,
}

/// A variant with its stock, as a product page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VariantStock {
    /// The variant.
    #[sqlx(flatten)]
    pub variant: Variant,
    /// Units on hand.
    pub on_hand: i64,
    /// Units reserved by open orders.
    pub reserved: i64,
}

impl VariantStock {
    /// Units that can still be ordered.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// Input for one variant of [`NewCatalogProduct`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewVariant {
    /// 1–64 characters, unique among variants.
    pub sku: String,
    /// Option values: at most 16, names 1–64 and values 1–200 characters.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Unit price in cents (not negative).
    pub price_cents: i64,
    /// ISO 4217 code: three upper-case letters.
    pub currency: String,
    /// Units received at creation (not negative), written as a `receipt` movement.
    #[serde(default)]
    pub initial_stock: i64,
}

/// A product image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Image {
    /// Primary key.
    pub id: Uuid,
    /// The product.
    pub product_id: Uuid,
    /// Display order (0 first).
    pub position: i32,
    /// Where it is.
    pub url: String,
    /// Alternative text.
    pub alt_text: String,
}

/// Input for one image of [`NewCatalogProduct`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewImage {
    /// An `http` or `https` URL of at most 2,048 characters.
    pub url: String,
    /// At most 500 characters.
    #[serde(default)]
    pub alt_text: String,
}

/// Input for [`crate::CatalogRepository::create_catalog_product`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewCatalogProduct {
    /// 1–64 characters, unique among products.
    pub sku: String,
    /// 1–200 characters.
    pub name: String,
    /// An existing category.
    pub category_id: Uuid,
    /// At most 100 characters.
    #[serde(default)]
    pub brand: Option<String>,
    /// At most 10,000 characters.
    #[serde(default)]
    pub description: String,
    /// A JSON object (default empty).
    #[serde(default = "empty_object")]
    pub attributes: serde_json::Value,
    /// At least one variant; the first is the default.
    pub variants: Vec<NewVariant>,
    /// In display order.
    #[serde(default)]
    pub images: Vec<NewImage>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// A product's rating aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rating {
    /// Reviews counted.
    pub review_count: u64,
    /// Their mean rating (1–5), `None` without reviews.
    pub average: Option<f64>,
}

/// Everything a product page shows, loaded in a fixed number of statements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductPage {
    /// The product.
    pub product: CatalogProduct,
    /// Its category.
    pub category: Category,
    /// Its variants in position order, each with its stock.
    pub variants: Vec<VariantStock>,
    /// Its images in position order.
    pub images: Vec<Image>,
    /// Its rating.
    pub rating: Rating,
}

/// Changes for [`crate::CatalogRepository::update_product`]; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProductChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new brand (`Some(None)` clears it).
    #[serde(default, with = "double_option")]
    pub brand: Option<Option<String>>,
    /// A new description.
    pub description: Option<String>,
    /// New attributes (replace the old ones).
    pub attributes: Option<serde_json::Value>,
    /// A new category.
    pub category_id: Option<Uuid>,
    /// New prices, by variant id (each a variant of this product). Orders already placed keep
    /// the prices they were placed at.
    #[serde(default)]
    pub prices: BTreeMap<Uuid, i64>,
}

impl ProductChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.brand.is_none()
            && self.description.is_none()
            && self.attributes.is_none()
            && self.category_id.is_none()
            && self.prices.is_empty()
    }
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Option<String>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            None => s.serialize_none(),
            Some(inner) => inner.serialize(s),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// How a category listing is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ListingSort {
    /// Newest first.
    #[default]
    Newest,
    /// Cheapest (lowest variant price) first.
    PriceAsc,
    /// Most expensive first.
    PriceDesc,
    /// Best rated first (unrated last).
    Rating,
}

impl ListingSort {
    /// The spelling in cursors and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            ListingSort::Newest => "newest",
            ListingSort::PriceAsc => "price_asc",
            ListingSort::PriceDesc => "price_desc",
            ListingSort::Rating => "rating",
        }
    }
}

impl std::str::FromStr for ListingSort {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "newest" => Ok(ListingSort::Newest),
            "price_asc" => Ok(ListingSort::PriceAsc),
            "price_desc" => Ok(ListingSort::PriceDesc),
            "rating" => Ok(ListingSort::Rating),
            other => Err(Error::validation(
                "sort",
                format!("{other:?} is not one of newest, price_asc, price_desc, rating"),
            )),
        }
    }
}

/// One page request of a category listing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListingQuery {
    /// The order.
    #[serde(default)]
    pub sort: ListingSort,
    /// Only products whose lowest variant price is at least this (cents).
    pub min_price_cents: Option<i64>,
    /// Only products whose lowest variant price is at most this (cents).
    pub max_price_cents: Option<i64>,
    /// Only products with a variant in stock.
    #[serde(default)]
    pub in_stock: bool,
    /// Only this brand.
    pub brand: Option<String>,
    /// Page size, 1–[`ListingQuery::MAX_LIMIT`] (0 means [`ListingQuery::DEFAULT_LIMIT`]).
    #[serde(default)]
    pub limit: u32,
    /// Where the previous page ended ([`CursorPage::next_cursor`]); `None` for the first.
    pub cursor: Option<String>,
}

impl ListingQuery {
    /// The page size when none is given.
    pub const DEFAULT_LIMIT: u32 = 20;
    /// The largest page.
    pub const MAX_LIMIT: u32 = 100;
}

/// A product as a listing shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductSummary {
    /// The product.
    pub id: Uuid,
    /// Its code.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its brand.
    pub brand: Option<String>,
    /// Its category.
    pub category_id: Uuid,
    /// Its lowest variant price, in cents.
    pub price_cents: i64,
    /// Units available over all its variants.
    pub available: i64,
    /// Mean rating (0 without reviews).
    pub rating: f64,
    /// Reviews counted.
    pub review_count: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// One page of a cursor-paginated listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorPage<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as [`ListingQuery::cursor`] for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// A variant's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct InventoryLevel {
    /// The variant.
    pub variant_id: Uuid,
    /// Units on hand.
    pub on_hand: i64,
    /// Units reserved by open orders (never more than on hand).
    pub reserved: i64,
}

impl InventoryLevel {
    /// Units that can still be ordered.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// What a stock movement records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MovementKind {
    /// Goods received: on hand up.
    Receipt,
    /// Units held for an order: reserved up.
    Reservation,
    /// A held order cancelled: reserved down.
    Release,
    /// A held order shipped: on hand and reserved down.
    Sale,
    /// A stock count correction: on hand up or down.
    Adjustment,
    /// Goods sent back by a customer: on hand up.
    Return,
}

impl MovementKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Receipt => "receipt",
            MovementKind::Reservation => "reservation",
            MovementKind::Release => "release",
            MovementKind::Sale => "sale",
            MovementKind::Adjustment => "adjustment",
            MovementKind::Return => "return",
        }
    }
}

impl TryFrom<String> for MovementKind {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        match s.as_str() {
            "receipt" => Ok(MovementKind::Receipt),
            "reservation" => Ok(MovementKind::Reservation),
            "release" => Ok(MovementKind::Release),
            "sale" => Ok(MovementKind::Sale),
            "adjustment" => Ok(MovementKind::Adjustment),
            "return" => Ok(MovementKind::Return),
            other => Err(Error::validation(
                "kind",
                format!("unknown stock movement {other:?}"),
            )),
        }
    }
}

/// One entry of the append-only stock ledger. Per variant, the movements' deltas add up to
/// its inventory row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct StockMovement {
    /// Primary key.
    pub id: Uuid,
    /// The variant.
    pub variant_id: Uuid,
    /// What happened.
    #[sqlx(try_from = "String")]
    pub kind: MovementKind,
    /// Change of the units on hand.
    pub on_hand_delta: i64,
    /// Change of the units reserved.
    pub reserved_delta: i64,
    /// Why (free text).
    pub reason: String,
    /// The order it belongs to, if any.
    pub order_id: Option<Uuid>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// A variant whose inventory row differs from the sum of its ledger
/// ([`crate::InventoryRepository::ledger_mismatches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct LedgerMismatch {
    /// The variant.
    pub variant_id: Uuid,
    /// Its inventory row's units on hand.
    pub on_hand: i64,
    /// Its inventory row's units reserved.
    pub reserved: i64,
    /// The sum of its movements' on-hand deltas.
    pub ledger_on_hand: i64,
    /// The sum of its movements' reserved deltas.
    pub ledger_reserved: i64,
}

/// Input for [`crate::ReviewRepository::create_review`]. Whether the purchase is verified is
/// decided by the repository, never by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewReview {
    /// The product reviewed.
    pub product_id: Uuid,
    /// The reviewer.
    pub user_id: Uuid,
    /// 1–5.
    pub rating: i16,
    /// 1–200 characters.
    pub title: String,
    /// At most 10,000 characters.
    #[serde(default)]
    pub body: String,
}

/// A product review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Review {
    /// Primary key.
    pub id: Uuid,
    /// The product.
    pub product_id: Uuid,
    /// The reviewer.
    pub user_id: Uuid,
    /// 1–5.
    pub rating: i16,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// Whether the reviewer had a paid or shipped order containing the product when the
    /// review was written.
    pub verified_purchase: bool,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// One line of a cart, priced at the variant's current price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct CartLine {
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
    /// The variant's current unit price in cents.
    pub unit_price_cents: i64,
    /// The price's currency.
    pub currency: String,
}

/// A user's cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Cart {
    /// Its lines, by SKU.
    pub lines: Vec<CartLine>,
    /// The sum of quantity × unit price, in cents.
    pub total_cents: i64,
}

/// A variant and a quantity: a line of a [`Checkout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantLine {
    /// The variant.
    pub variant_id: Uuid,
    /// Units (positive).
    pub quantity: i64,
}

/// Input for [`crate::OrderRepository::checkout`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// The buyer.
    pub user_id: Uuid,
    /// What to buy; `None` buys the cart (and empties it in the same transaction).
    pub lines: Option<Vec<VariantLine>>,
    /// Where to ship (an existing address).
    pub shipping_address_id: Option<Uuid>,
    /// Where to bill (an existing address).
    pub billing_address_id: Option<Uuid>,
}

/// A product's sales over a period ([`crate::CatalogRepository::best_sellers`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ProductSales {
    /// The product.
    pub product_id: Uuid,
    /// Its code.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Units sold (orders not cancelled).
    pub units: i64,
    /// Revenue in cents.
    pub revenue_cents: i64,
}

/// A product with its rating ([`crate::CatalogRepository::top_rated`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct RatedProduct {
    /// The product.
    pub product_id: Uuid,
    /// Its code.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Mean rating.
    pub average: f64,
    /// Reviews counted.
    pub review_count: i64,
}

/// A product bought by buyers of another ([`crate::CatalogRepository::also_bought`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AlsoBought {
    /// The product.
    pub product_id: Uuid,
    /// Its code.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Distinct users who bought both.
    pub buyers: i64,
}
