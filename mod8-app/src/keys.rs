//! Every cache key and tag the app uses, one function each, so the flows that write an entry,
//! the flows that read it and the code that drops it always name it the same way.
//!
//! Everything derived from one user's data carries that user's [`user_tag`], which is what a
//! committed write (an order) invalidates.

use uuid::Uuid;

/// Cache tag of everything derived from one user's data: `user:{id}`.
pub fn user_tag(user_id: Uuid) -> String {
    format!("user:{user_id}")
}

/// Cache key of a user row: `users:{id}`.
pub fn user(user_id: Uuid) -> String {
    format!("users:{user_id}")
}

/// Cache key of a user's engagement counters, an atomic counter
/// ([`mod8_cache::Cache::increment`], not a cached entry) counted once per recorded event:
/// `engagement:{id}`.
pub fn counters(user_id: Uuid) -> String {
    format!("engagement:{user_id}")
}

/// Cache key of a user's churn, lifetime-value and next-purchase predictions:
/// `predictions:{id}`.
pub fn predictions(user_id: Uuid) -> String {
    format!("predictions:{user_id}")
}

/// Cache key of a user's personalised recommendations: `recommendations:{id}`.
pub fn recommendations(user_id: Uuid) -> String {
    format!("recommendations:{user_id}")
}

/// Cache key of a user's analytics profile: `profile:{id}`.
pub fn profile(user_id: Uuid) -> String {
    format!("profile:{user_id}")
}

/// Cache key of the stored segment report over every user: `insights`.
pub fn insights() -> &'static str {
    "insights"
}

/// Cache key of a product page ([`mod8_orm::ProductPage`]): `product:{id}`.
pub fn product(product_id: Uuid) -> String {
    format!("product:{product_id}")
}

/// Cache tag of every cached category listing: `category-listing`. Any product change
/// invalidates it (a change of price, brand, stock or category can move a product in or out
/// of any listing, or change its place in one).
pub fn category_listing_tag() -> &'static str {
    "category-listing"
}

/// Cache key of one page of a category listing: `category-listing:{id}:{query}`, `query`
/// being the canonical form of the listing query (every parameter, defaults filled in).
pub fn category_listing(category_id: Uuid, query: &str) -> String {
    format!("category-listing:{category_id}:{query}")
}

/// Cache tag of every cached recommendation list: `recommendations`. A product change
/// invalidates it, since any list may name the product.
pub fn recommendations_tag() -> &'static str {
    "recommendations"
}

/// Cache tag of every cached product-search page: `product-search`. Any product change
/// invalidates it (a change of name, brand, description, category, stock or an archive can
/// move a product in or out of any result, or change its place in one).
pub fn product_search_tag() -> &'static str {
    "product-search"
}

/// Cache key of one page of a product search: `product-search:{query}`, `query` being the
/// normalised query, its filters, the page size and the cursor.
pub fn product_search(query: &str) -> String {
    format!("product-search:{query}")
}

/// Cache tag of every cached similarity answer: `similar-products`. Any product event
/// invalidates it (a change can move a product nearer to or further from any other).
pub fn similar_products_tag() -> &'static str {
    "similar-products"
}

/// Cache key of one similarity answer: `similar-products:{id}:{query}`, `query` being the
/// canonical form of the query (`k`, `category`, `in_stock`).
pub fn similar_products(product_id: Uuid, query: &str) -> String {
    format!("similar-products:{product_id}:{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are what caches already hold (and what operators search a Redis for): a
    /// change here orphans every entry written before it.
    #[test]
    fn keys_and_tags_keep_their_names() {
        let id: Uuid = "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
        assert_eq!(user_tag(id), format!("user:{id}"));
        assert_eq!(user(id), format!("users:{id}"));
        assert_eq!(counters(id), format!("engagement:{id}"));
        assert_eq!(predictions(id), format!("predictions:{id}"));
        assert_eq!(recommendations(id), format!("recommendations:{id}"));
        assert_eq!(profile(id), format!("profile:{id}"));
        assert_eq!(insights(), "insights");
        assert_eq!(product(id), format!("product:{id}"));
        assert_eq!(category_listing_tag(), "category-listing");
        assert_eq!(
            category_listing(id, "q"),
            format!("category-listing:{id}:q")
        );
        assert_eq!(recommendations_tag(), "recommendations");
    }
}
