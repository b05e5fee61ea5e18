//! The repository traits for `Arc<T>` and `Box<T>`, forwarding every call to `T`, so a
//! shared or boxed repository (a [`crate::DynDatabase`], a `Box<dyn UnitOfWork>`, a decorator
//! behind an `Arc`) is itself a repository and fits wherever one is expected.

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
use crate::repository::{
    AnalyticsRepository, CartRepository, CatalogRepository, InventoryRepository,
    LocationRepository, OrderRepository, OutboxRepository, ProductRepository, ReviewRepository,
    UserRepository,
};

/// Implements `$trait` for `Arc<T>` and `Box<T>` with the given forwarding methods.
macro_rules! forward {
    ($trait:ident { $($methods:tt)* }) => {
        #[async_trait]
        impl<T: $trait + ?Sized> $trait for Arc<T> {
            $($methods)*
        }

        #[async_trait]
        impl<T: $trait + ?Sized> $trait for Box<T> {
            $($methods)*
        }
    };
}

forward!(UserRepository {
    async fn get_user(&self, id: Uuid) -> Result<User> {
        (**self).get_user(id).await
    }
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        (**self).find_user_by_email(email).await
    }
    async fn create_user(&self, user: NewUser) -> Result<User> {
        (**self).create_user(user).await
    }
    async fn create_users(&self, users: Vec<NewUser>) -> Result<u64> {
        (**self).create_users(users).await
    }
    async fn update_user(&self, id: Uuid, update: UserUpdate) -> Result<User> {
        (**self).update_user(id, update).await
    }
    async fn delete_user(&self, id: Uuid) -> Result<()> {
        (**self).delete_user(id).await
    }
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        (**self).list_users(page).await
    }
    async fn users_in_country(&self, country_name: &str) -> Result<Vec<User>> {
        (**self).users_in_country(country_name).await
    }
    async fn users_in_city(&self, city_name: &str) -> Result<Vec<User>> {
        (**self).users_in_city(city_name).await
    }
    async fn users_with_location(&self, page: PageRequest) -> Result<Vec<UserWithLocation>> {
        (**self).users_with_location(page).await
    }
    async fn user_stats(&self) -> Result<UserStats> {
        (**self).user_stats().await
    }
    async fn users_by_activity(&self, limit: u32) -> Result<Vec<UserActivityRank>> {
        (**self).users_by_activity(limit).await
    }
    async fn create_user_with_address(
        &self,
        address: NewAddress,
        user: NewUser,
    ) -> Result<(User, Address)> {
        (**self).create_user_with_address(address, user).await
    }
});

forward!(LocationRepository {
    async fn create_country(&self, country: NewCountry) -> Result<Country> {
        (**self).create_country(country).await
    }
    async fn country_by_code(&self, iso_code: &str) -> Result<Country> {
        (**self).country_by_code(iso_code).await
    }
    async fn create_city(&self, city: NewCity) -> Result<City> {
        (**self).create_city(city).await
    }
    async fn find_city(&self, name: &str, country_code: &str) -> Result<Option<City>> {
        (**self).find_city(name, country_code).await
    }
    async fn create_address(&self, address: NewAddress) -> Result<Address> {
        (**self).create_address(address).await
    }
    async fn addresses_in_city(&self, city_id: Uuid) -> Result<Vec<Address>> {
        (**self).addresses_in_city(city_id).await
    }
    async fn location(&self, address_id: Uuid) -> Result<Location> {
        (**self).location(address_id).await
    }
    async fn countries_with_cities(&self) -> Result<Vec<CountryWithCities>> {
        (**self).countries_with_cities().await
    }
    async fn country_stats(&self) -> Result<Vec<CountryStats>> {
        (**self).country_stats().await
    }
});

forward!(ProductRepository {
    async fn create_product(&self, product: NewProduct) -> Result<Product> {
        (**self).create_product(product).await
    }
    async fn get_product(&self, id: Uuid) -> Result<Product> {
        (**self).get_product(id).await
    }
    async fn products(&self, category: Option<&str>) -> Result<Vec<Product>> {
        (**self).products(category).await
    }
    async fn restock(&self, id: Uuid, quantity: i64) -> Result<Product> {
        (**self).restock(id, quantity).await
    }
});

forward!(OrderRepository {
    async fn place_order(&self, order: NewOrder) -> Result<OrderWithItems> {
        (**self).place_order(order).await
    }
    async fn checkout(&self, checkout: Checkout) -> Result<OrderWithItems> {
        (**self).checkout(checkout).await
    }
    async fn get_order(&self, id: Uuid) -> Result<OrderWithItems> {
        (**self).get_order(id).await
    }
    async fn set_order_status(&self, id: Uuid, status: OrderStatus) -> Result<Order> {
        (**self).set_order_status(id, status).await
    }
    async fn orders_of_user(&self, user_id: Uuid) -> Result<Vec<OrderWithItems>> {
        (**self).orders_of_user(user_id).await
    }
    async fn purchase_history(&self, user_id: Uuid) -> Result<Vec<Purchase>> {
        (**self).purchase_history(user_id).await
    }
    async fn product_popularity(&self, limit: u32) -> Result<Vec<ProductPopularity>> {
        (**self).product_popularity(limit).await
    }
});

forward!(AnalyticsRepository {
    async fn user_distribution(&self) -> Result<Vec<CountryDistribution>> {
        (**self).user_distribution().await
    }
    async fn registration_cohorts(&self, active_since: DateTime<Utc>) -> Result<Vec<Cohort>> {
        (**self).registration_cohorts(active_since).await
    }
    async fn top_spenders(&self, min_spent_cents: i64, limit: u32) -> Result<Vec<HighValueUser>> {
        (**self).top_spenders(min_spent_cents, limit).await
    }
    async fn top_profiles(&self, min_score: f64, limit: u32) -> Result<Vec<HighValueUser>> {
        (**self).top_profiles(min_score, limit).await
    }
    fn customer_rfm(&self, calibration_end: NaiveDate) -> BoxStream<'_, Result<CustomerRfm>> {
        (**self).customer_rfm(calibration_end)
    }
    fn customer_histories(&self) -> BoxStream<'_, Result<CustomerHistory>> {
        (**self).customer_histories()
    }
    async fn co_purchase_counts(&self) -> Result<CoPurchaseCounts> {
        (**self).co_purchase_counts().await
    }
});

forward!(OutboxRepository {
    async fn enqueue(&self, topic: &str, payload: serde_json::Value) -> Result<OutboxMessage> {
        (**self).enqueue(topic, payload).await
    }
    async fn claim_pending(
        &self,
        limit: u32,
        lease: std::time::Duration,
    ) -> Result<Vec<OutboxMessage>> {
        (**self).claim_pending(limit, lease).await
    }
    async fn mark_sent(&self, ids: &[Uuid]) -> Result<u64> {
        (**self).mark_sent(ids).await
    }
    async fn count_pending(&self) -> Result<u64> {
        (**self).count_pending().await
    }
    async fn purge_sent(&self, retention: std::time::Duration) -> Result<u64> {
        (**self).purge_sent(retention).await
    }
    async fn count_outbox_rows(&self) -> Result<u64> {
        (**self).count_outbox_rows().await
    }
    async fn oldest_pending(&self) -> Result<Option<OutboxMessage>> {
        (**self).oldest_pending().await
    }
});

forward!(CatalogRepository {
    async fn create_category(&self, category: NewCategory) -> Result<Category> {
        (**self).create_category(category).await
    }
    async fn get_category(&self, id: Uuid) -> Result<Category> {
        (**self).get_category(id).await
    }
    async fn categories(&self) -> Result<Vec<Category>> {
        (**self).categories().await
    }
    async fn move_category(&self, id: Uuid, parent_id: Option<Uuid>) -> Result<Category> {
        (**self).move_category(id, parent_id).await
    }
    async fn category_path(&self, id: Uuid) -> Result<Vec<Category>> {
        (**self).category_path(id).await
    }
    async fn category_tree_counts(&self, id: Uuid) -> Result<Vec<CategoryCount>> {
        (**self).category_tree_counts(id).await
    }
    async fn create_catalog_product(&self, product: NewCatalogProduct) -> Result<ProductPage> {
        (**self).create_catalog_product(product).await
    }
    async fn product_page(&self, id: Uuid) -> Result<ProductPage> {
        (**self).product_page(id).await
    }
    async fn update_product(
        &self,
        id: Uuid,
        expected_version: i64,
        changes: ProductChanges,
    ) -> Result<CatalogProduct> {
        (**self).update_product(id, expected_version, changes).await
    }
    async fn archive_product(&self, id: Uuid, expected_version: i64) -> Result<CatalogProduct> {
        (**self).archive_product(id, expected_version).await
    }
    async fn list_category_products(
        &self,
        category_id: Uuid,
        query: ListingQuery,
    ) -> Result<CursorPage<ProductSummary>> {
        (**self).list_category_products(category_id, query).await
    }
    async fn best_sellers(
        &self,
        category_id: Uuid,
        days: u32,
        limit: u32,
    ) -> Result<Vec<ProductSales>> {
        (**self).best_sellers(category_id, days, limit).await
    }
    async fn top_rated(&self, min_reviews: u32, limit: u32) -> Result<Vec<RatedProduct>> {
        (**self).top_rated(min_reviews, limit).await
    }
    async fn also_bought(&self, product_id: Uuid, limit: u32) -> Result<Vec<AlsoBought>> {
        (**self).also_bought(product_id, limit).await
    }
});

forward!(InventoryRepository {
    async fn inventory(&self, variant_id: Uuid) -> Result<InventoryLevel> {
        (**self).inventory(variant_id).await
    }
    async fn receive_stock(
        &self,
        variant_id: Uuid,
        quantity: i64,
        reason: &str,
    ) -> Result<InventoryLevel> {
        (**self).receive_stock(variant_id, quantity, reason).await
    }
    async fn return_stock(
        &self,
        variant_id: Uuid,
        quantity: i64,
        order_id: Option<Uuid>,
    ) -> Result<InventoryLevel> {
        (**self).return_stock(variant_id, quantity, order_id).await
    }
    async fn adjust_stock(
        &self,
        variant_id: Uuid,
        delta: i64,
        reason: &str,
    ) -> Result<InventoryLevel> {
        (**self).adjust_stock(variant_id, delta, reason).await
    }
    async fn stock_movements(&self, variant_id: Uuid, limit: u32) -> Result<Vec<StockMovement>> {
        (**self).stock_movements(variant_id, limit).await
    }
    async fn ledger_mismatches(&self) -> Result<Vec<LedgerMismatch>> {
        (**self).ledger_mismatches().await
    }
});

forward!(ReviewRepository {
    async fn create_review(&self, review: NewReview) -> Result<Review> {
        (**self).create_review(review).await
    }
    async fn reviews_of(&self, product_id: Uuid, page: PageRequest) -> Result<Vec<Review>> {
        (**self).reviews_of(product_id, page).await
    }
    async fn product_rating(&self, product_id: Uuid) -> Result<Rating> {
        (**self).product_rating(product_id).await
    }
});

forward!(CartRepository {
    async fn add_to_cart(&self, user_id: Uuid, variant_id: Uuid, quantity: i64) -> Result<Cart> {
        (**self).add_to_cart(user_id, variant_id, quantity).await
    }
    async fn set_cart_quantity(
        &self,
        user_id: Uuid,
        variant_id: Uuid,
        quantity: i64,
    ) -> Result<Cart> {
        (**self).set_cart_quantity(user_id, variant_id, quantity).await
    }
    async fn remove_from_cart(&self, user_id: Uuid, variant_id: Uuid) -> Result<bool> {
        (**self).remove_from_cart(user_id, variant_id).await
    }
    async fn cart(&self, user_id: Uuid) -> Result<Cart> {
        (**self).cart(user_id).await
    }
    async fn clear_cart(&self, user_id: Uuid) -> Result<u64> {
        (**self).clear_cart(user_id).await
    }
});
