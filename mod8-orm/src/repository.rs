//! The repository traits. Every backend implements all of them, both on its connection pool
//! and inside a [`UnitOfWork`], so the same calling code runs in or out of a transaction.
//! Each is also implemented for `Arc<T>` and `Box<T>` of an implementation, by forwarding.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::BoxStream;
use uuid::Uuid;

use crate::catalog::*;
use crate::customer_summary::CustomerRfm;
use crate::error::Result;
use crate::model::*;
use crate::purchases::{CoPurchaseCounts, CustomerHistory};

/// Users: CRUD, lookups by location, eager loading, statistics and ranking.
///
/// Implemented for `Arc<T>` and `Box<T>` by forwarding.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// The user with this id, or [`crate::Error::NotFound`].
    async fn get_user(&self, id: Uuid) -> Result<User>;
    /// The user with this e-mail address (compared case-insensitively), if any.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>>;
    /// Validates and inserts a user; a taken e-mail or username is a
    /// [`crate::Error::Conflict`] naming the field.
    async fn create_user(&self, user: NewUser) -> Result<User>;
    /// Validates and inserts many users in batches that respect the database's bind-parameter
    /// limit, all in one transaction; returns how many were inserted.
    async fn create_users(&self, users: Vec<NewUser>) -> Result<u64>;
    /// Applies the changes and returns the updated user.
    async fn update_user(&self, id: Uuid, update: UserUpdate) -> Result<User>;
    /// Deletes the user (and their orders); [`crate::Error::NotFound`] when absent.
    async fn delete_user(&self, id: Uuid) -> Result<()>;
    /// One page of users, oldest first.
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>>;
    /// Users living in the country with this name.
    async fn users_in_country(&self, country_name: &str) -> Result<Vec<User>>;
    /// Users living in a city with this name (in any country).
    async fn users_in_city(&self, city_name: &str) -> Result<Vec<User>>;
    /// One page of users with Address → City → Country, loaded in one statement.
    async fn users_with_location(&self, page: PageRequest) -> Result<Vec<UserWithLocation>>;
    /// Count, verified share and min / mean / max profile score.
    async fn user_stats(&self) -> Result<UserStats>;
    /// The `limit` most active users, ranked with a window function by orders, then recency.
    async fn users_by_activity(&self, limit: u32) -> Result<Vec<UserActivityRank>>;
    /// Creates an address and a user living there in one transaction: when any step fails
    /// nothing is left behind. `user.address_id` is ignored.
    async fn create_user_with_address(
        &self,
        address: NewAddress,
        user: NewUser,
    ) -> Result<(User, Address)>;
}

/// Countries, cities and addresses.
///
/// Implemented for `Arc<T>` and `Box<T>` by forwarding.
#[async_trait]
pub trait LocationRepository: Send + Sync {
    /// Validates (the ISO code must be assigned) and inserts a country.
    async fn create_country(&self, country: NewCountry) -> Result<Country>;
    /// The country with this ISO code, or [`crate::Error::NotFound`].
    async fn country_by_code(&self, iso_code: &str) -> Result<Country>;
    /// Inserts a city into an existing country.
    async fn create_city(&self, city: NewCity) -> Result<City>;
    /// The city with this name in the country with this code, if any.
    async fn find_city(&self, name: &str, country_code: &str) -> Result<Option<City>>;
    /// Inserts an address in an existing city.
    async fn create_address(&self, address: NewAddress) -> Result<Address>;
    /// The addresses in a city, by street.
    async fn addresses_in_city(&self, city_id: Uuid) -> Result<Vec<Address>>;
    /// The address with its city and country (one statement).
    async fn location(&self, address_id: Uuid) -> Result<Location>;
    /// Every country with its cities: two statements (countries, then all their cities in one
    /// batched query), stitched in Rust.
    async fn countries_with_cities(&self) -> Result<Vec<CountryWithCities>>;
    /// Users, cities, mean profile score and users per million inhabitants for each country.
    async fn country_stats(&self) -> Result<Vec<CountryStats>>;
}

/// The product catalogue seen as simple products: each product through its default variant
/// (see [`Product`]). Stock changes are written to the stock-movement ledger in the same
/// transaction as the inventory row.
///
/// Implemented for `Arc<T>` and `Box<T>` by forwarding.
#[async_trait]
pub trait ProductRepository: Send + Sync {
    /// Validates and inserts a simple product in one transaction: its category (a root
    /// category, found by slug or created), the product, its one variant (same id and SKU)
    /// and its inventory with an opening `receipt` movement. A taken SKU is a conflict on
    /// `sku`.
    async fn create_product(&self, product: NewProduct) -> Result<Product>;
    /// The product with this id, or [`crate::Error::NotFound`].
    async fn get_product(&self, id: Uuid) -> Result<Product>;
    /// The whole catalogue, or one category of it, by name; archived products are left out.
    async fn products(&self, category: Option<&str>) -> Result<Vec<Product>>;
    /// Adds `quantity` (positive) units to the default variant's stock (with a `receipt`
    /// movement) and returns the product.
    async fn restock(&self, id: Uuid, quantity: i64) -> Result<Product>;
}

/// The catalog: the category tree, products with variants, images, stock and ratings, and
/// the paged listing of a category's subtree.
///
/// Implemented for `Arc<T>` and `Box<T>` by forwarding.
#[async_trait]
pub trait CatalogRepository: Send + Sync {
    /// Validates and inserts a category under an existing parent (or as a root); a taken
    /// slug is a conflict on `slug`, an unknown parent [`crate::Error::NotFound`].
    async fn create_category(&self, category: NewCategory) -> Result<Category>;
    /// The category with this id, or [`crate::Error::NotFound`].
    async fn get_category(&self, id: Uuid) -> Result<Category>;
    /// Every category, roots first, then by name.
    async fn categories(&self) -> Result<Vec<Category>>;
    /// Moves a category (with its subtree) under `parent_id` (`None`: to the roots). Moving
    /// it under itself or one of its descendants is a [`crate::Error::Validation`] on
    /// `parent_id`; moves are serialised, so two concurrent moves cannot make a cycle either.
    async fn move_category(&self, id: Uuid, parent_id: Option<Uuid>) -> Result<Category>;
    /// The breadcrumb of a category: its root first, the category itself last.
    async fn category_path(&self, id: Uuid) -> Result<Vec<Category>>;
    /// The subtree under a category (itself first, then by depth and name), each with the
    /// number of products (not archived) in it and below it. One statement.
    async fn category_tree_counts(&self, id: Uuid) -> Result<Vec<CategoryCount>>;
    /// Creates a product with its variants (each with an inventory row and, for an initial
    /// stock, a `receipt` movement) and images in one transaction; returns its page. Taken
    /// SKUs are conflicts on `sku`, an unknown category [`crate::Error::NotFound`].
    async fn create_catalog_product(&self, product: NewCatalogProduct) -> Result<ProductPage>;
    /// The product with its category, variants and their stock, images and rating, in four
    /// statements whatever the number of variants and images. Archived products are found
    /// too (orders refer to them); [`crate::Error::NotFound`] when absent.
    async fn product_page(&self, id: Uuid) -> Result<ProductPage>;
    /// Applies `changes` if the product is still at `expected_version`, incrementing the
    /// version, in one transaction. A stale version is a [`crate::Error::Conflict`] on
    /// `version`; a price for a variant of another product is a validation error on
    /// `prices`. Orders already placed keep their prices.
    async fn update_product(
        &self,
        id: Uuid,
        expected_version: i64,
        changes: ProductChanges,
    ) -> Result<CatalogProduct>;
    /// Archives the product (it leaves listings; orders still read it) if it is still at
    /// `expected_version`; archiving an archived product is a no-op.
    async fn archive_product(&self, id: Uuid, expected_version: i64) -> Result<CatalogProduct>;
    /// One page of the products (not archived) of a category and every category below it,
    /// filtered and sorted as `query` says, in one statement. The cursor is keyset-based: a
    /// page does not shift when products are inserted or removed before it.
    async fn list_category_products(
        &self,
        category_id: Uuid,
        query: ListingQuery,
    ) -> Result<CursorPage<ProductSummary>>;
    /// The best-selling products (not archived) of a category subtree over the last `days`
    /// days (1–3,660), by units sold in orders not cancelled, then revenue. One statement.
    async fn best_sellers(
        &self,
        category_id: Uuid,
        days: u32,
        limit: u32,
    ) -> Result<Vec<ProductSales>>;
    /// The best-rated products (not archived) with at least `min_reviews` reviews, by mean
    /// rating, then review count. One statement.
    async fn top_rated(&self, min_reviews: u32, limit: u32) -> Result<Vec<RatedProduct>>;
    /// "Customers who bought this also bought": other products (not archived) bought by
    /// buyers of `product_id` (orders not cancelled), by number of such buyers. One
    /// statement.
    async fn also_bought(&self, product_id: Uuid, limit: u32) -> Result<Vec<AlsoBought>>;
}

/// Inventory and its append-only stock-movement ledger: every change of an inventory row is
/// written with its movement in the same transaction, so per variant the movements add up to
/// the row.
///
/// Implemented for `Arc<T>` and `Box<T>` by forwarding.
#[async_trait]
pub trait InventoryRepository: Send + Sync {
    /// The variant's stock, or [`crate::Error::NotFound`] (entity `variant`).
    async fn inventory(&self, variant_id: Uuid) -> Result<InventoryLevel>;
    /// Books `quantity` (positive) units received (a `receipt` movement).
    async fn receive_stock(
        &self,
        variant_id: Uuid,
        quantity: i64,
        reason: &str,
    ) -> Result<InventoryLevel>;
    /// Books `quantity` (positive) units returned by a customer, against `order_id` if given
    /// (a `return` movement).
    async fn return_stock(
        &self,
        variant_id: Uuid,
        quantity: i64,
        order_id: Option<Uuid>,
    ) -> Result<InventoryLevel>;
    /// Corrects the units on hand by `delta` (not zero; an `adjustment` movement). Going below
    /// the reserved units (or zero) is a [`crate::Error::Conflict`] on `stock`.
    async fn adjust_stock(
        &self,
        variant_id: Uuid,
        delta: i64,
        reason: &str,
    ) -> Result<InventoryLevel>;
    /// The variant's movements, newest first, at most `limit`.
    async fn stock_movements(&self, variant_id: Uuid, limit: u32) -> Result<Vec<StockMovement>>;
    /// Every variant whose inventory row differs from the sum of its ledger (empty when the
    /// books balance). One statement.
    async fn ledger_mismatches(&self) -> Result<Vec<LedgerMismatch>>;
}

/// Product reviews and their rating aggregates.
///
/// Implemented for `Arc<T>` and `Box<T>` by forwarding.
#[async_trait]
pub trait ReviewRepository: Send + Sync {
    /// Writes a review and updates the product's rating aggregate in one transaction. It is a
    /// verified purchase exactly when the user has a paid or shipped order containing the
    /// product. One review per user and product: a second is a [`crate::Error::Conflict`] on
    /// `user_id`; an unknown product or user is [`crate::Error::NotFound`]; a rating outside
    /// 1–5 a validation error on `rating`.
    async fn create_review(&self, review: NewReview) -> Result<Review>;
    /// A product's reviews, newest first.
    async fn reviews_of(&self, product_id: Uuid, page: PageRequest) -> Result<Vec<Review>>;
    /// A product's rating aggregate (zero reviews when it has none or does not exist).
    async fn product_rating(&self, product_id: Uuid) -> Result<Rating>;
}

/// Shopping carts: one line per user and variant.
///
/// Implemented for `Arc<T>` and `Box<T>` by forwarding.
#[async_trait]
pub trait CartRepository: Send + Sync {
    /// Adds `quantity` (1–[`crate::validate::MAX_CART_QUANTITY`]) units of a variant; adding a
    /// variant already in the cart merges the quantities (atomically). Returns the cart. An
    /// unknown user or variant is [`crate::Error::NotFound`].
    async fn add_to_cart(&self, user_id: Uuid, variant_id: Uuid, quantity: i64) -> Result<Cart>;
    /// Sets a line's quantity (1–[`crate::validate::MAX_CART_QUANTITY`]); a variant not in the cart
    /// is [`crate::Error::NotFound`] (entity `cart item`).
    async fn set_cart_quantity(
        &self,
        user_id: Uuid,
        variant_id: Uuid,
        quantity: i64,
    ) -> Result<Cart>;
    /// Removes a line; returns whether it was there.
    async fn remove_from_cart(&self, user_id: Uuid, variant_id: Uuid) -> Result<bool>;
    /// The user's cart priced at current prices (empty for an unknown user).
    async fn cart(&self, user_id: Uuid) -> Result<Cart>;
    /// Empties the cart; returns how many lines it had.
    async fn clear_cart(&self, user_id: Uuid) -> Result<u64>;
}

/// Orders and purchase history.
///
/// Implemented for `Arc<T>` and `Box<T>` by forwarding.
#[async_trait]
pub trait OrderRepository: Send + Sync {
    /// Places an order in one transaction: each line buys its product's default variant at
    /// the variant's price; its units are reserved in the inventory (with a `reservation`
    /// movement) atomically — a [`crate::Error::Conflict`] on `stock` naming the variant and
    /// what it has available when short — and nothing is written unless every line succeeds.
    async fn place_order(&self, order: NewOrder) -> Result<OrderWithItems>;
    /// Places an order for variants, from the given lines or (with `lines: None`) from the
    /// user's cart, which is then emptied in the same transaction; with shipping and billing
    /// addresses (each must exist). Stock is reserved through the ledger all or nothing: a
    /// short variant is a [`crate::Error::Conflict`] on `stock` naming it and what it has
    /// available, and then nothing is written (no reservation, no order, the cart as it
    /// was). An empty cart is a validation error on `lines`.
    async fn checkout(&self, checkout: Checkout) -> Result<OrderWithItems>;
    /// The order with its items, or [`crate::Error::NotFound`].
    async fn get_order(&self, id: Uuid) -> Result<OrderWithItems>;
    /// Changes an order's status along [`OrderStatus::may_follow`]: shipping sells the
    /// reserved units (`sale` movements), cancelling releases them (`release` movements).
    /// Asking for the status it has is a no-op; any other move is a
    /// [`crate::Error::Conflict`] on `status`.
    async fn set_order_status(&self, id: Uuid, status: OrderStatus) -> Result<Order>;
    /// A user's orders with their items, newest first (two statements, no N+1).
    async fn orders_of_user(&self, user_id: Uuid) -> Result<Vec<OrderWithItems>>;
    /// Every product a user bought, newest first (cancelled orders excluded).
    async fn purchase_history(&self, user_id: Uuid) -> Result<Vec<Purchase>>;
    /// The `limit` best-selling products by units sold.
    async fn product_popularity(&self, limit: u32) -> Result<Vec<ProductPopularity>>;
}

/// Analytics over the whole data set.
///
/// Implemented for `Arc<T>` and `Box<T>` by forwarding.
#[async_trait]
pub trait AnalyticsRepository: Send + Sync {
    /// How many users live in each country, most first.
    async fn user_distribution(&self) -> Result<Vec<CountryDistribution>>;
    /// Users grouped by registration month (UTC), with the share verified, the share active
    /// since `active_since`, mean profile score and orders.
    async fn registration_cohorts(&self, active_since: DateTime<Utc>) -> Result<Vec<Cohort>>;
    /// Users who spent at least `min_spent_cents`, biggest spenders first.
    async fn top_spenders(&self, min_spent_cents: i64, limit: u32) -> Result<Vec<HighValueUser>>;
    /// Users with a profile score of at least `min_score`, highest first.
    async fn top_profiles(&self, min_score: f64, limit: u32) -> Result<Vec<HighValueUser>>;
    /// The recency-frequency-monetary summary of every customer with a purchase on or before
    /// `calibration_end`, in weeks, as customer-value models (BG/NBD, Gamma-Gamma) take it:
    /// lifetimes' `summary_data_from_transaction_data` with daily periods (see
    /// [`CustomerRfm`] for the exact rules: paid and shipped orders only, UTC days, same-day
    /// orders merged, the first purchase day left out of the monetary value).
    ///
    /// One SQL statement does the grouping and aggregation in the database; the customers are
    /// streamed in user-id order (the byte order of the UUIDs, which is also the order of their
    /// hyphenated lower-case text), a bounded number ahead of the caller, so memory does not
    /// grow with the number of orders or customers.
    ///
    /// The stream holds a connection until it ends or is dropped: on a database with a single
    /// connection (in-memory SQLite), or inside a unit of work, finish or drop it before the
    /// next call. Nothing happens until it is first polled.
    ///
    /// # Errors
    ///
    /// Items are [`crate::Error::Validation`] on `calibration_end` for a date outside the years
    /// 1–9999, or the database's error; an error ends the stream.
    ///
    /// ```
    /// use mod8_orm::futures::TryStreamExt;
    /// use mod8_orm::{chrono::NaiveDate, AnalyticsRepository};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let db = mod8_orm::connect("sqlite::memory:").await?;
    /// let end = NaiveDate::from_ymd_opt(2024, 6, 30).unwrap();
    /// let mut customers = db.customer_rfm(end);
    /// while let Some(c) = customers.try_next().await? {
    ///     println!("{} x={} tx={} T={} m={}", c.user_id, c.frequency, c.recency, c.t,
    ///         c.monetary_value_cents / 100.0);
    /// }
    /// # Ok::<(), mod8_orm::Error>(())
    /// # }).unwrap();
    /// ```
    fn customer_rfm(&self, calibration_end: NaiveDate) -> BoxStream<'_, Result<CustomerRfm>>;

    /// Every user, each once with every product they bought (order lines of orders that are
    /// not cancelled, newest first, as [`OrderRepository::purchase_history`] gives them), in
    /// user-id order: what a report over the whole customer base profiles, without a page
    /// limit and without one statement per user.
    ///
    /// One statement (users left-joined to their order lines, sorted by user) streams the
    /// rows; they are grouped per user as they arrive and a bounded number of users is held
    /// ahead of the caller, so memory does not grow with the number of users (one user's lines
    /// are held at a time).
    ///
    /// As with [`AnalyticsRepository::customer_rfm`], the stream holds a connection until it
    /// ends or is dropped (finish or drop it before the next call on a single-connection
    /// database or a unit of work), and nothing happens until it is first polled.
    ///
    /// # Errors
    ///
    /// Items are the database's error; an error ends the stream.
    ///
    /// ```
    /// use mod8_orm::futures::TryStreamExt;
    /// use mod8_orm::AnalyticsRepository;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let db = mod8_orm::connect("sqlite::memory:").await?;
    /// let mut customers = db.customer_histories();
    /// while let Some(c) = customers.try_next().await? {
    ///     println!("{} bought {} lines", c.user.username, c.purchases.len());
    /// }
    /// # Ok::<(), mod8_orm::Error>(())
    /// # }).unwrap();
    /// ```
    fn customer_histories(&self) -> BoxStream<'_, Result<CustomerHistory>>;

    /// The co-occurrence counts of an item-to-item recommendation model over every order line
    /// (cancelled orders excluded): distinct buyers per product, distinct buyers per pair of
    /// products bought by the same user, and order lines per product and UTC day (for a
    /// trending score). The same figures as counting every user's
    /// [`OrderRepository::purchase_history`], computed in the database: one aggregate for the
    /// pairs and buyers (the distinct (user, product) pairs joined with themselves on the user),
    /// one for the lines per day. Only counts leave the database, so the result grows with the
    /// catalogue (pairs bought together, products × days with sales), not with the number of
    /// users or orders. The two statements run one after the other, not in one snapshot.
    ///
    /// # Errors
    ///
    /// The database's error.
    async fn co_purchase_counts(&self) -> Result<CoPurchaseCounts>;
}

/// The transactional outbox: enqueue messages in the same unit of work as the data they
/// describe, then claim and mark them sent from a relay.
///
/// Implemented for `Arc<T>` and `Box<T>` by forwarding.
#[async_trait]
pub trait OutboxRepository: Send + Sync {
    /// Stores a message to be published later.
    async fn enqueue(&self, topic: &str, payload: serde_json::Value) -> Result<OutboxMessage>;
    /// Claims up to `limit` unsent messages, oldest first, for `lease` (other claimers skip
    /// them until it expires) and counts the attempt.
    async fn claim_pending(
        &self,
        limit: u32,
        lease: std::time::Duration,
    ) -> Result<Vec<OutboxMessage>>;
    /// Marks messages as sent; returns how many were still unsent.
    async fn mark_sent(&self, ids: &[Uuid]) -> Result<u64>;
    /// How many messages are still unsent (claimed under a lease or not): the relay's
    /// backlog, for health checks and metrics.
    async fn count_pending(&self) -> Result<u64>;
    /// Deletes the messages sent `retention` ago or earlier; returns how many. Unsent
    /// messages are never deleted.
    async fn purge_sent(&self, retention: std::time::Duration) -> Result<u64>;
    /// How many messages the outbox holds, sent or not (its size, for metrics).
    async fn count_outbox_rows(&self) -> Result<u64>;
    /// The oldest unsent message (claimed under a lease or not), `None` when every message
    /// is sent: its `created_at` says how long the relay has been behind, for metrics and
    /// alerts.
    async fn oldest_pending(&self) -> Result<Option<OutboxMessage>>;
}

/// All repositories of one backend.
pub trait Repositories:
    UserRepository
    + LocationRepository
    + ProductRepository
    + CatalogRepository
    + InventoryRepository
    + ReviewRepository
    + CartRepository
    + OrderRepository
    + AnalyticsRepository
    + OutboxRepository
{
}

impl<T> Repositories for T where
    T: UserRepository
        + LocationRepository
        + ProductRepository
        + CatalogRepository
        + InventoryRepository
        + ReviewRepository
        + CartRepository
        + OrderRepository
        + AnalyticsRepository
        + OutboxRepository
        + ?Sized
{
}

/// Several repository calls sharing one transaction.
///
/// Dropping a unit of work without [`UnitOfWork::commit`] rolls it back. A nested unit
/// ([`UnitOfWork::begin_nested`]) is a savepoint: rolling it back undoes only its own work,
/// and so does dropping it (before the transaction is next used, the outer commit included).
///
/// Savepoints nest strictly, in the order they were opened: committing or rolling back one
/// also ends every nested unit opened after it that is still open (their work is kept with a
/// commit, undone with a rollback or drop), and those units then answer every call with a
/// [`crate::Error::Validation`] on `unit_of_work`.
#[async_trait]
pub trait UnitOfWork: Repositories {
    /// A savepoint inside this transaction, usable like the outer unit.
    async fn begin_nested(&self) -> Result<Box<dyn UnitOfWork>>;
    /// Commits (or, when nested, releases the savepoint).
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Rolls back (or, when nested, rolls back to the savepoint).
    async fn rollback(self: Box<Self>) -> Result<()>;
}

/// Which database a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// PostgreSQL (the `postgres` feature).
    Postgres,
    /// SQLite, in memory or in a file.
    Sqlite,
}

impl Backend {
    /// `postgres` or `sqlite`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// A connected database: every repository on its pool, plus transactions.
#[async_trait]
pub trait Database: Repositories + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// Starts a unit of work (a transaction).
    async fn begin(&self) -> Result<Box<dyn UnitOfWork>>;
    /// Statements issued through the repositories so far (on the pool and in every unit of
    /// work started from it), for tests and metrics; transaction control statements (`BEGIN`,
    /// `COMMIT`, savepoints) are not counted.
    fn statements_executed(&self) -> u64;
    /// Waits until all connections are closed.
    async fn close(&self);
    /// The connection pools underneath and how full they are ([`crate::PoolUsage`], read
    /// without a round trip): one for a single database, the primary's and the replica's
    /// behind a [`crate::replica::ReplicaRouter`]; empty for a database without a pool of
    /// its own (the default).
    fn pool_usage(&self) -> Vec<crate::PoolUsage> {
        Vec::new()
    }
    /// Which server answered the reads so far, for a database that routes reads to a replica
    /// ([`crate::replica::ReplicaRouter`], counted over all its handles); `None` for one that
    /// reads where it writes (the default).
    fn read_routing(&self) -> Option<crate::replica::RouteStats> {
        None
    }
    /// The bulk loader of catalog products ([`crate::CatalogBulkLoad`]: `COPY` on
    /// PostgreSQL, multi-row `INSERT`s on SQLite); `None` for a database without one, where
    /// callers fall back to [`CatalogRepository::create_catalog_product`].
    fn catalog_bulk_load(&self) -> Option<&dyn crate::bulk::CatalogBulkLoad> {
        None
    }
    /// Every statement's timings and the slow-statement log ([`crate::StatementLog`]: slow
    /// runs counted per statement name, each logged with its plan once per interval);
    /// `None` for a database that does not time its statements.
    fn statement_log(&self) -> Option<&std::sync::Arc<crate::StatementLog>> {
        None
    }
    /// Full-text product search ([`crate::ProductSearch`]: a weighted `tsvector` on
    /// PostgreSQL, FTS5 on SQLite); `None` for a database without one.
    fn product_search(&self) -> Option<&dyn crate::search::ProductSearch> {
        None
    }
    /// Vector similarity of products ([`crate::ProductSimilarity`]: pgvector or an exact
    /// scan on PostgreSQL, an in-process HNSW index on SQLite); `None` for a database
    /// without it.
    fn product_similarity(&self) -> Option<&dyn crate::similarity::ProductSimilarity> {
        None
    }
}

/// A shared, type-erased database handle, as returned by [`crate::OrmConfig::connect`].
pub type DynDatabase = Arc<dyn Database>;
