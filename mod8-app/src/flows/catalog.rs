//! The catalog's read and write paths: product pages and category listings served from the
//! cache, and product writes that go through one unit of work with an outbox row, then drop
//! what they made stale.
//!
//! - Read a product: the cache under [`keys::product`], or on a miss
//!   [`mod8_orm::CatalogRepository::product_page`] (a fixed number of statements), cached for
//!   [`PRODUCT_TTL`]. [`ProductView::cached`] says which.
//! - List a category: one page of [`mod8_orm::CatalogRepository::list_category_products`],
//!   cached per query for [`LISTING_TTL`] under the [`keys::category_listing_tag`] tag.
//! - Write a product: in one unit of work, check the version the client read (its `ETag`),
//!   update, and enqueue a [`PRODUCT_UPDATED_TOPIC`] outbox row; after the commit drop the
//!   product's page and every listing, so this process reads its own write at once. The relay
//!   publishes the row as a [`ProductEvent`]; [`ProductEventConsumer`] then drops the page,
//!   every listing and every cached recommendation list wherever the consumer runs.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use mod8_cache::{Cache, EntryOptions};
use mod8_mq::domain::ProductEvent;
use mod8_mq::{ConsumerHandle, DynBroker, Envelope, Handler, Outcome};
use mod8_orm::{
    CatalogProduct, Category, ListingQuery, ListingSort, NewCatalogProduct, NewCategory,
    ProductChanges, ProductPage, ProductSummary, UnitOfWork,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::flows::params::{self, echo};
use crate::outbox::{OutboxEvent, PRODUCT_UPDATED_TOPIC};
use crate::{keys, App};

/// How long a product page stays cached (a product change drops it at once).
pub const PRODUCT_TTL: Duration = Duration::from_secs(300);
/// How long one page of a category listing stays cached (any product change drops every
/// listing at once; the short TTL bounds what stock changes, which do not go through
/// product updates, leave stale).
pub const LISTING_TTL: Duration = Duration::from_secs(30);
pub use super::params::MAX_CURSOR_CHARS;

/// A product page (`GET /api/products/{id}`, and the answer of every product write).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductView {
    /// The product, its category, variants with stock, images and rating.
    #[serde(flatten)]
    pub page: ProductPage,
    /// Whether this answer came from the cache.
    pub cached: bool,
}

impl ProductView {
    /// The product's entity tag: its version, quoted (`"3"`).
    pub fn etag(&self) -> String {
        etag(&self.page.product)
    }
}

/// The entity tag of a product: `"{version}"` (every update bumps the version).
pub fn etag(product: &CatalogProduct) -> String {
    format!("\"{}\"", product.version)
}

/// One category of the tree (`GET /api/categories`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryEntry {
    /// The category.
    #[serde(flatten)]
    pub category: Category,
    /// Products (not archived) in it and every category below it; present when asked for
    /// (`?counts=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products: Option<u64>,
}

/// The category tree (`GET /api/categories`): every category, roots first, then by name;
/// `parent_id` links them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryTree {
    /// Every category.
    pub categories: Vec<CategoryEntry>,
}

/// One page of a category listing (`GET /api/categories/{id}/products`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Listing {
    /// The products of the page.
    pub items: Vec<ProductSummary>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
    /// Whether this answer came from the cache.
    pub cached: bool,
}

/// A product's full document (`PUT /api/products/{id}`): every field is replaced. Variants
/// and their prices are not part of it (`PATCH` with `prices` changes those).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductDocument {
    /// 1–200 characters.
    pub name: String,
    /// At most 100 characters; null or absent for none.
    #[serde(default)]
    pub brand: Option<String>,
    /// At most 10,000 characters.
    #[serde(default)]
    pub description: String,
    /// A JSON object.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// An existing category.
    pub category_id: Uuid,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl From<ProductDocument> for ProductChanges {
    fn from(d: ProductDocument) -> Self {
        ProductChanges {
            name: Some(d.name),
            brand: Some(d.brand),
            description: Some(d.description),
            attributes: Some(d.attributes),
            category_id: Some(d.category_id),
            prices: BTreeMap::new(),
        }
    }
}

/// A partial change of a product (`PATCH /api/products/{id}`): absent fields stay as they
/// are.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    /// A new name (1–200 characters).
    #[serde(default)]
    pub name: Option<String>,
    /// A new brand; `null` clears it, absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub brand: Option<Option<String>>,
    /// A new description.
    #[serde(default)]
    pub description: Option<String>,
    /// New attributes (a JSON object, replacing the old one).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Value>,
    /// A new category (an existing one).
    #[serde(default)]
    pub category_id: Option<Uuid>,
    /// New prices in cents (not negative), by variant id (each a variant of this product).
    /// Orders already placed keep their prices.
    #[serde(default)]
    pub prices: BTreeMap<Uuid, i64>,
}

/// A field that is present, `null` included (`Some(None)`); absent fields get the default.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl From<ProductPatch> for ProductChanges {
    fn from(p: ProductPatch) -> Self {
        ProductChanges {
            name: p.name,
            brand: p.brand,
            description: p.description,
            attributes: p.attributes,
            category_id: p.category_id,
            prices: p.prices,
        }
    }
}

/// The versions an `If-Match` header names: `None` for `*` (any version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfMatch(pub Option<Vec<i64>>);

impl IfMatch {
    /// Parses an `If-Match` value: `*`, or a comma-separated list of entity tags (`"3"`,
    /// weak tags `W/"3"` too). Tags that are not a version of this API match nothing.
    pub fn parse(value: &str) -> Self {
        if value.trim() == "*" {
            return IfMatch(None);
        }
        IfMatch(Some(parse_tags(value)))
    }

    fn matches(&self, version: i64) -> bool {
        self.0.as_ref().is_none_or(|tags| tags.contains(&version))
    }
}

/// The versions named by a list of entity tags (`"3", W/"4"`); others are skipped.
pub fn parse_tags(value: &str) -> Vec<i64> {
    value
        .split(',')
        .filter_map(|tag| {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
        })
        .collect()
}

/// The query of a category listing, from the query string: `sort`
/// (`newest|price_asc|price_desc|rating`), `min_price_cents`, `max_price_cents`, `in_stock`,
/// `brand`, `limit` (1–100, default 20), `cursor`. Anything else, or a value that does not
/// parse, is a validation error naming the parameter.
///
/// # Errors
///
/// [`AppError::Validation`] naming the parameter.
pub fn listing_query(params: &HashMap<String, String>) -> AppResult<ListingQuery> {
    let mut query = ListingQuery::default();
    let cents = |field: &str, raw: &str| -> AppResult<i64> {
        raw.parse::<i64>().ok().filter(|c| *c >= 0).ok_or_else(|| {
            AppError::validation(
                field,
                format!(
                    "{} is not a price in cents (a non-negative integer)",
                    echo(raw)
                ),
            )
        })
    };
    for (name, raw) in params {
        match name.as_str() {
            "sort" => query.sort = raw.parse::<ListingSort>()?,
            "min_price_cents" => query.min_price_cents = Some(cents(name, raw)?),
            "max_price_cents" => query.max_price_cents = Some(cents(name, raw)?),
            "in_stock" => query.in_stock = params::flag(name, raw)?,
            "brand" => {
                if raw.is_empty() || raw.chars().count() > 100 {
                    return Err(AppError::validation("brand", "must be 1–100 characters"));
                }
                query.brand = Some(raw.clone());
            }
            "limit" => {
                query.limit = params::count(name, raw, ListingQuery::MAX_LIMIT, "page size")?
            }
            "cursor" => query.cursor = Some(params::cursor(raw)?),
            other => {
                return Err(params::unknown(
                    other,
                    "sort, min_price_cents, max_price_cents, in_stock, brand, limit or cursor",
                ))
            }
        }
    }
    if let (Some(min), Some(max)) = (query.min_price_cents, query.max_price_cents) {
        if min > max {
            return Err(AppError::validation(
                "min_price_cents",
                format!("{min} is above max_price_cents {max}"),
            ));
        }
    }
    Ok(query)
}

/// A failure of a write under `If-Match`: a stale version is 412, not a 409.
fn stale_is_412(e: mod8_orm::Error) -> AppError {
    match e {
        mod8_orm::Error::Conflict { ref field, .. } if field == "version" => {
            AppError::PreconditionFailed(
                "the product changed since it was read: read it again and retry with its ETag"
                    .into(),
            )
        }
        e => e.into(),
    }
}

impl App {
    /// A product page, from the cache or the SQL store (and then cached for
    /// [`PRODUCT_TTL`]). Archived products are found too.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown product, or the SQL store failing. A cache
    /// failure is never an error: the page is loaded instead.
    pub async fn product_view(&self, id: Uuid) -> AppResult<ProductView> {
        let key = keys::product(id);
        if let Some(page) = self.cache.get::<ProductPage>(&key).await? {
            return Ok(ProductView { page, cached: true });
        }
        let options = EntryOptions::ttl(PRODUCT_TTL);
        let page = self
            .cache
            .get_or_load(&key, &options, || {
                self.call("sql.product_page", "sql", self.sql.product_page(id))
            })
            .await
            .map_err(AppError::from)?;
        Ok(ProductView {
            page,
            cached: false,
        })
    }

    /// Every category, roots first, then by name; with `counts`, each with the number of
    /// products (not archived) in it and below it (one statement per root).
    ///
    /// # Errors
    ///
    /// The SQL store failing.
    pub async fn category_tree(&self, counts: bool) -> AppResult<CategoryTree> {
        let categories = self
            .call("sql.categories", "sql", self.sql.categories())
            .await?;
        let mut totals: HashMap<Uuid, u64> = HashMap::new();
        if counts {
            for root in categories.iter().filter(|c| c.parent_id.is_none()) {
                let subtree = self
                    .call(
                        "sql.category_tree_counts",
                        "sql",
                        self.sql.category_tree_counts(root.id),
                    )
                    .await?;
                totals.extend(subtree.into_iter().map(|c| (c.category.id, c.products)));
            }
        }
        Ok(CategoryTree {
            categories: categories
                .into_iter()
                .map(|category| CategoryEntry {
                    products: counts.then(|| totals.get(&category.id).copied().unwrap_or(0)),
                    category,
                })
                .collect(),
        })
    }

    /// One page of a category's listing (its subtree's products, not archived), from the
    /// cache or the SQL store (then cached for [`LISTING_TTL`] under the
    /// [`keys::category_listing_tag`]).
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown category, [`AppError::Validation`] for a cursor
    /// this API did not hand out (naming `cursor`), or the SQL store failing.
    pub async fn category_listing(
        &self,
        category_id: Uuid,
        query: ListingQuery,
    ) -> AppResult<Listing> {
        let canonical = serde_json::to_string(&query)
            .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("listing key")))?;
        let key = keys::category_listing(category_id, &canonical);
        type Page = mod8_orm::CursorPage<ProductSummary>;
        if let Some(page) = self.cache.get::<Page>(&key).await? {
            return Ok(Listing {
                items: page.items,
                next_cursor: page.next_cursor,
                cached: true,
            });
        }
        let options = EntryOptions::ttl(LISTING_TTL).with_tag(keys::category_listing_tag());
        let page: Page = self
            .cache
            .get_or_load(&key, &options, || async {
                // One statement: the repository itself tells an unknown category (not
                // found) from an empty page of a known one.
                self.call(
                    "sql.list_category_products",
                    "sql",
                    self.sql.list_category_products(category_id, query),
                )
                .await
            })
            .await
            .map_err(AppError::from)?;
        Ok(Listing {
            items: page.items,
            next_cursor: page.next_cursor,
            cached: false,
        })
    }

    /// Creates a category.
    ///
    /// # Errors
    ///
    /// [`AppError::Validation`] naming the field, [`AppError::NotFound`] for an unknown
    /// parent, [`AppError::Conflict`] on a taken `slug`, or the SQL store failing.
    pub async fn create_category(&self, category: NewCategory) -> AppResult<Category> {
        self.call(
            "sql.create_category",
            "sql",
            self.sql.create_category(category),
        )
        .await
    }

    /// Creates a product with its variants and images, with a [`PRODUCT_UPDATED_TOPIC`]
    /// outbox row in the same unit of work; drops every cached listing.
    ///
    /// # Errors
    ///
    /// [`AppError::Validation`] naming the field (price, currency, options, ...),
    /// [`AppError::NotFound`] for an unknown category, [`AppError::Conflict`] on a taken
    /// `sku`, or the SQL store failing.
    pub async fn create_product(&self, product: NewCatalogProduct) -> AppResult<ProductView> {
        let uow = self.call("sql.begin", "sql", self.sql.begin()).await?;
        let result = self
            .call(
                "sql.create_product",
                "sql",
                create_in(uow.as_ref(), product),
            )
            .await;
        let page = self.finish(uow, result).await?;
        self.product_changed(page.product.id).await;
        Ok(ProductView {
            page,
            cached: false,
        })
    }

    /// Applies `changes` to a product if its version is one `if_match` names: in one unit of
    /// work, the check, the update and a [`PRODUCT_UPDATED_TOPIC`] outbox row (which variants'
    /// prices changed included); after the commit the cached page and every cached listing
    /// are dropped. Answers the new page.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown product (or category),
    /// [`AppError::PreconditionFailed`] when the product is no longer at a version `if_match`
    /// names (a concurrent write included), [`AppError::Validation`] naming the field (an
    /// empty change is one on `body`), or the SQL store failing.
    pub async fn update_product(
        &self,
        id: Uuid,
        if_match: &IfMatch,
        changes: ProductChanges,
    ) -> AppResult<ProductView> {
        if changes.is_empty() {
            return Err(AppError::validation("body", "nothing to change"));
        }
        let uow = self.call("sql.begin", "sql", self.sql.begin()).await?;
        let result = self
            .call(
                "sql.update_product",
                "sql",
                update_in(uow.as_ref(), id, if_match, changes),
            )
            .await;
        self.finish(uow, result).await?;
        self.product_changed(id).await;
        self.fresh_view(id).await
    }

    /// Archives a product (it leaves every listing; its page still answers, with
    /// `archived_at`) if it is still at `expected_version`, with a [`PRODUCT_UPDATED_TOPIC`]
    /// outbox row in the same unit of work; then drops its page and every listing.
    ///
    /// # Errors
    ///
    /// [`AppError::NotFound`] for an unknown product, [`AppError::PreconditionFailed`] for a
    /// stale version, or the SQL store failing.
    pub async fn archive_product(&self, id: Uuid, expected_version: i64) -> AppResult<ProductView> {
        let uow = self.call("sql.begin", "sql", self.sql.begin()).await?;
        let result = self
            .call(
                "sql.archive_product",
                "sql",
                archive_in(uow.as_ref(), id, expected_version),
            )
            .await;
        self.finish(uow, result).await?;
        self.product_changed(id).await;
        self.fresh_view(id).await
    }

    /// The page as stored now (not cached: the next read caches it).
    async fn fresh_view(&self, id: Uuid) -> AppResult<ProductView> {
        let page = self
            .call("sql.product_page", "sql", self.sql.product_page(id))
            .await?;
        Ok(ProductView {
            page,
            cached: false,
        })
    }

    /// Commits `uow` and wakes the outbox relay when `result` is a success; rolls back when it
    /// is a failure (and answers it).
    async fn finish<T>(&self, uow: Box<dyn UnitOfWork>, result: AppResult<T>) -> AppResult<T> {
        match result {
            Ok(value) => {
                self.call("sql.commit", "sql", uow.commit()).await?;
                self.outbox.notify();
                Ok(value)
            }
            Err(e) => {
                if let Err(rollback) = uow.rollback().await {
                    tracing::warn!(error = %rollback, "rollback after a failed catalog write failed");
                }
                Err(e)
            }
        }
    }

    /// Drops what this process can tell is stale after a committed product change: the
    /// product's page and every category listing. (Recommendations, and other processes'
    /// copies, are the [`ProductEventConsumer`]'s.) Cache failures are logged: the entries
    /// expire by their TTL.
    async fn product_changed(&self, id: Uuid) {
        if let Err(e) = invalidate_product(&self.cache, id, false).await {
            tracing::warn!(product_id = %id, error = %e, "could not drop cached entries of a changed product");
        }
        crate::flows::search::invalidate_search_logged(&self.cache, id).await;
        // This process's similarity index and answers too (the consumer does it everywhere).
        if let Err(e) = super::similar::product_similarity_changed(&self.sql, &self.cache, id).await
        {
            tracing::warn!(product_id = %id, error = %e, "could not update the similarity index of a changed product");
        }
    }

    /// The handler [`App::start`] runs on the product-events queue ([`ProductEventConsumer`]).
    pub fn product_event_consumer(&self) -> ProductEventConsumer {
        ProductEventConsumer {
            cache: self.cache.clone(),
            sql: self.sql.clone(),
        }
    }
}

async fn create_in(uow: &dyn UnitOfWork, product: NewCatalogProduct) -> AppResult<ProductPage> {
    let page = uow.create_catalog_product(product).await?;
    enqueue_product_event(uow, &page.product, Vec::new()).await?;
    Ok(page)
}

async fn update_in(
    uow: &dyn UnitOfWork,
    id: Uuid,
    if_match: &IfMatch,
    changes: ProductChanges,
) -> AppResult<()> {
    let current = uow.product_page(id).await?;
    let version = current.product.version;
    if !if_match.matches(version) {
        return Err(AppError::PreconditionFailed(format!(
            "the product is at version {version} (ETag \"{version}\"), which If-Match does not name"
        )));
    }
    let prices_changed: Vec<Uuid> = current
        .variants
        .iter()
        .filter(|v| {
            changes
                .prices
                .get(&v.variant.id)
                .is_some_and(|p| *p != v.variant.price_cents)
        })
        .map(|v| v.variant.id)
        .collect();
    let product = uow
        .update_product(id, version, changes)
        .await
        .map_err(stale_is_412)?;
    enqueue_product_event(uow, &product, prices_changed).await
}

async fn archive_in(uow: &dyn UnitOfWork, id: Uuid, expected_version: i64) -> AppResult<()> {
    let product = uow
        .archive_product(id, expected_version)
        .await
        .map_err(stale_is_412)?;
    enqueue_product_event(uow, &product, Vec::new()).await
}

/// Enqueues the [`PRODUCT_UPDATED_TOPIC`] row of a product change in `uow`: an
/// [`OutboxEvent`] about the product (its `event_id` becomes the message id) carrying a
/// [`ProductEvent`].
async fn enqueue_product_event(
    uow: &dyn UnitOfWork,
    product: &CatalogProduct,
    prices_changed: Vec<Uuid>,
) -> AppResult<()> {
    let event = ProductEvent {
        product_id: product.id,
        version: product.version,
        category_id: Some(product.category_id),
        prices_changed,
    };
    let payload = OutboxEvent::new(product.id.to_string(), event)
        .to_payload()
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("outbox payload")))?;
    uow.enqueue(PRODUCT_UPDATED_TOPIC, payload).await?;
    Ok(())
}

/// Drops the cached page of a product and every cached category listing; with
/// `recommendations`, every cached recommendation list too.
async fn invalidate_product(
    cache: &Cache,
    id: Uuid,
    recommendations: bool,
) -> mod8_cache::Result<()> {
    cache.delete(&keys::product(id)).await?;
    cache.invalidate_tag(keys::category_listing_tag()).await?;
    if recommendations {
        cache.invalidate_tag(keys::recommendations_tag()).await?;
    }
    Ok(())
}

/// The consumer of [`ProductEvent`]s (worker role): drops everything derived from the
/// product — its page ([`keys::product`]), every category listing
/// ([`keys::category_listing_tag`]) and every cached recommendation list
/// ([`keys::recommendations_tag`]; any may name the product).
///
/// Idempotent by nature rather than by a ledger: dropping an entry twice leaves the cache as
/// dropping it once does, so a redelivery (or the same event published twice by the relay
/// under its message id) changes nothing. It never drops more than a fresh read would
/// recompute.
#[derive(Clone)]
pub struct ProductEventConsumer {
    cache: Cache,
    /// The SQL store, whose similarity index each event updates.
    sql: mod8_orm::DynDatabase,
}

impl std::fmt::Debug for ProductEventConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductEventConsumer")
            .field("cache", &self.cache)
            .field("sql", &self.sql.backend())
            .finish()
    }
}

impl ProductEventConsumer {
    /// Starts consuming the topology's product-events queue, with its retry policy and
    /// dead-letter route.
    ///
    /// # Errors
    ///
    /// The consumer cannot subscribe to the queue.
    pub async fn start(
        self,
        broker: DynBroker,
        topology: &mod8_mq::domain::Topology,
    ) -> mod8_mq::Result<ConsumerHandle> {
        let queue = topology.product_events_queue.clone();
        topology.consumer(broker, queue, self).start().await
    }
}

#[async_trait]
impl Handler<ProductEvent> for ProductEventConsumer {
    async fn handle(&self, message: &Envelope<ProductEvent>) -> Outcome {
        let event = &message.payload;
        if let Err(e) = crate::flows::search::invalidate_search(&self.cache).await {
            return Outcome::retry(format!("dropping cached search pages failed: {e}"));
        }
        if let Err(e) =
            super::similar::product_similarity_changed(&self.sql, &self.cache, event.product_id)
                .await
        {
            return Outcome::retry(format!("updating the similarity index failed: {e}"));
        }
        match invalidate_product(&self.cache, event.product_id, true).await {
            Ok(()) => {
                tracing::debug!(product_id = %event.product_id, version = event.version, "product event: caches dropped");
                Outcome::Ack
            }
            Err(e) => Outcome::retry(format!("dropping cached entries failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AppConfig;

    #[test]
    fn entity_tags_parse_strong_weak_and_lists() {
        assert_eq!(parse_tags("\"3\""), [3]);
        assert_eq!(parse_tags("W/\"3\", \"4\",junk, \"x\""), [3, 4]);
        assert!(IfMatch::parse("*").matches(9));
        assert!(IfMatch::parse("\"1\", \"2\"").matches(2));
        assert!(!IfMatch::parse("\"1\"").matches(2));
        assert!(!IfMatch::parse("garbage").matches(1));
    }

    #[test]
    fn listing_queries_name_the_bad_parameter() {
        let params = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let q = listing_query(&params(&[
            ("sort", "price_desc"),
            ("limit", "100"),
            ("in_stock", "true"),
            ("brand", "Acme"),
        ]))
        .unwrap();
        assert_eq!(q.sort, ListingSort::PriceDesc);
        assert_eq!(
            (q.limit, q.in_stock, q.brand.as_deref()),
            (100, true, Some("Acme"))
        );
        for (pairs, field) in [
            (vec![("limit", "101")], "limit"),
            (vec![("sort", "best")], "sort"),
            (vec![("cursor", "")], "cursor"),
            (vec![("max_price_cents", "-3")], "max_price_cents"),
            (vec![("page", "2")], "page"),
        ] {
            match listing_query(&params(&pairs)) {
                Err(AppError::Validation { field: f, .. }) => assert_eq!(f, field, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    /// The update's outbox row: the event id, the product, its new version and exactly the
    /// variants whose price changed.
    #[tokio::test]
    async fn an_update_enqueues_which_prices_changed() {
        let app = App::build(AppConfig::embedded()).await.unwrap();
        let category = app
            .create_category(NewCategory {
                parent_id: None,
                slug: "outbox-test".into(),
                name: "Outbox".into(),
            })
            .await
            .unwrap();
        let variant = |sku: &str| mod8_orm::NewVariant {
            sku: sku.into(),
            options: Default::default(),
            price_cents: 100,
            currency: "EUR".into(),
            initial_stock: 0,
        };
        let created = app
            .create_product(NewCatalogProduct {
                sku: "P-1".into(),
                name: "P".into(),
                category_id: category.id,
                brand: None,
                description: String::new(),
                attributes: serde_json::json!({}),
                variants: vec![variant("P-1-a"), variant("P-1-b")],
                images: Vec::new(),
            })
            .await
            .unwrap();
        let (a, b) = (
            created.page.variants[0].variant.id,
            created.page.variants[1].variant.id,
        );
        let changes = ProductChanges {
            prices: [(a, 150), (b, 100)].into_iter().collect(),
            ..ProductChanges::default()
        };
        let updated = app
            .update_product(created.page.product.id, &IfMatch::parse("\"1\""), changes)
            .await
            .unwrap();
        assert_eq!(updated.etag(), "\"2\"");
        let rows = app
            .sql
            .claim_pending(10, Duration::from_secs(60))
            .await
            .unwrap();
        let events: Vec<OutboxEvent<ProductEvent>> = rows
            .iter()
            .filter(|r| r.topic == PRODUCT_UPDATED_TOPIC)
            .map(|r| serde_json::from_value(r.payload.clone()).unwrap())
            .collect();
        assert_eq!(events.len(), 2, "the creation's and the update's");
        let update = events.iter().find(|e| e.event.version == 2).unwrap();
        assert_eq!(update.event.product_id, created.page.product.id);
        assert_eq!(update.aggregate_id, created.page.product.id.to_string());
        assert_eq!(update.event.prices_changed, [a], "b's price did not change");
        assert_ne!(
            events[0].event_id, events[1].event_id,
            "each event its own id"
        );
        app.shutdown().await;
    }
}
