//! The catalog migration carries data written under the flat product schema forward.

use futures::future::BoxFuture;
use uuid::Uuid;

use crate::*;

/// What [`case_catalog_migration_carries_data_forward`] needs from a store that has not been
/// migrated yet: raw SQL on its pool, and migrating it to a version.
pub struct RawStore<'a> {
    /// Which SQL dialect the statements are written in.
    pub backend: Backend,
    /// Runs statements without parameters (panics on failure).
    pub execute: Box<dyn Fn(String) -> BoxFuture<'a, ()> + Send + Sync + 'a>,
    /// Runs a query returning one `BIGINT` (panics on failure).
    pub scalar: Box<dyn Fn(String) -> BoxFuture<'a, i64> + Send + Sync + 'a>,
    /// Applies the crate's migrations up to this version (panics on failure).
    pub migrate_to: Box<dyn Fn(i64) -> BoxFuture<'a, ()> + Send + Sync + 'a>,
}

impl std::fmt::Debug for RawStore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

fn uuid_literal(backend: Backend, id: Uuid) -> String {
    match backend {
        Backend::Postgres => format!("'{id}'::uuid"),
        Backend::Sqlite => format!("X'{}'", id.simple()),
    }
}

/// Data written under migrations 1–2 (products with a text category, a price and a stock
/// already reduced by the orders placed; orders in every status) survives migration 3: every
/// product becomes a product with one variant of the same id, SKU and price, in a category per
/// distinct slug; its inventory keeps what was available (on hand = stock + units of open
/// orders, those units reserved) with an opening ledger that adds up; every order line points
/// at the variant; totals, purchase histories and popularity are unchanged; and the migrated
/// orders still ship and cancel through the ledger.
///
/// `raw` works on the same database as `db`, which must have no migration applied yet.
pub async fn case_catalog_migration_carries_data_forward(raw: RawStore<'_>, db: &dyn Database) {
    let b = raw.backend;
    let id = |n: u128| Uuid::from_u128(0x1000 + n);
    let (ada, bob) = (id(1), id(2));
    let (book, book2, rake) = (id(11), id(12), id(13));
    let (placed, paid, shipped, cancelled) = (id(21), id(22), id(23), id(24));
    let lit = |u: Uuid| uuid_literal(b, u);
    (raw.migrate_to)(2).await;
    let t = "'2025-03-01T10:00:00+00:00'";
    let script = format!(
        "INSERT INTO users (id, email, username, address_id, profile_score, is_verified, \
           created_at, last_active_at, username_key) VALUES \
           ({ada}, 'ada@x.org', 'ada', NULL, 50, TRUE, {t}, {t}, 'ada'), \
           ({bob}, 'bob@x.org', 'bob', NULL, 40, FALSE, {t}, {t}, 'bob'); \
         INSERT INTO products (id, sku, name, category, price_cents, stock) VALUES \
           ({book}, 'BK-1', 'Dune', 'Books', 1200, 10), \
           ({book2}, 'BK-2', 'Emma', 'books', 800, 5), \
           ({rake}, 'GD-1', 'Rake', 'Garden Tools', 2500, 0); \
         INSERT INTO orders (id, user_id, created_at, status, total_cents) VALUES \
           ({placed}, {ada}, '2025-03-02T10:00:00+00:00', 'placed', 2400), \
           ({paid}, {ada}, '2025-03-03T10:00:00+00:00', 'paid', 800), \
           ({shipped}, {bob}, '2025-03-04T10:00:00+00:00', 'shipped', 6100), \
           ({cancelled}, {bob}, '2025-03-05T10:00:00+00:00', 'cancelled', 2500); \
         INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES \
           ({placed}, {book}, 2, 1200), \
           ({paid}, {book2}, 1, 800), \
           ({shipped}, {book}, 3, 1200), ({shipped}, {rake}, 1, 2500), \
           ({cancelled}, {rake}, 1, 2500)",
        ada = lit(ada),
        bob = lit(bob),
        book = lit(book),
        book2 = lit(book2),
        rake = lit(rake),
        placed = lit(placed),
        paid = lit(paid),
        shipped = lit(shipped),
        cancelled = lit(cancelled),
    );
    (raw.execute)(script).await;
    (raw.migrate_to)(i64::MAX).await;

    // Categories: one per slug, named by the first spelling.
    assert_eq!(
        (raw.scalar)("SELECT COUNT(*) FROM categories".into()).await,
        2
    );
    let products = db.products(None).await.unwrap();
    let names: Vec<(&str, &str, i64, i64)> = products
        .iter()
        .map(|p| (p.sku.as_str(), p.category.as_str(), p.price_cents, p.stock))
        .collect();
    assert_eq!(
        names,
        [
            ("BK-1", "Books", 1200, 10),
            ("BK-2", "Books", 800, 5),
            ("GD-1", "Garden Tools", 2500, 0)
        ],
        "what was available stays available"
    );
    assert_eq!(db.products(Some("Books")).await.unwrap().len(), 2);

    // One variant per product, with its id and SKU; inventory and ledger add up.
    let scalar = |sql: String| (raw.scalar)(sql);
    assert_eq!(
        scalar("SELECT COUNT(*) FROM product_variants WHERE id = product_id".into()).await,
        3
    );
    let inventory = |p: Uuid, column: &str| {
        scalar(format!(
            "SELECT {column} FROM inventory WHERE variant_id = {}",
            lit(p)
        ))
    };
    assert_eq!(inventory(book, "on_hand").await, 12, "10 free + 2 reserved");
    assert_eq!(inventory(book, "reserved").await, 2);
    assert_eq!(inventory(book2, "on_hand").await, 6);
    assert_eq!(inventory(book2, "reserved").await, 1);
    assert_eq!(inventory(rake, "on_hand").await, 0);
    let ledger_mismatches = || {
        scalar(
            "SELECT COUNT(*) FROM inventory i WHERE \
               i.on_hand <> (SELECT COALESCE(SUM(m.on_hand_delta), 0) FROM stock_movements m \
                             WHERE m.variant_id = i.variant_id) \
               OR i.reserved <> (SELECT COALESCE(SUM(m.reserved_delta), 0) \
                                 FROM stock_movements m WHERE m.variant_id = i.variant_id)"
                .into(),
        )
    };
    assert_eq!(ledger_mismatches().await, 0);

    // Order lines point at the variants; totals still add up.
    assert_eq!(
        scalar("SELECT COUNT(*) FROM order_items WHERE variant_id <> product_id".into()).await,
        0
    );
    assert_eq!(
        scalar(
            "SELECT COUNT(*) FROM orders o WHERE o.total_cents <> \
               (SELECT SUM(quantity * unit_price_cents) FROM order_items oi \
                WHERE oi.order_id = o.id)"
                .into()
        )
        .await,
        0
    );
    let shipped_order = db.get_order(shipped).await.unwrap();
    assert_eq!(shipped_order.items.len(), 2);
    assert!(shipped_order
        .items
        .iter()
        .all(|i| i.variant_id == i.product_id));
    assert_eq!(db.purchase_history(ada).await.unwrap().len(), 2);
    let bobs: Vec<String> = db
        .purchase_history(bob)
        .await
        .unwrap()
        .into_iter()
        .map(|p| format!("{} {} {}", p.sku, p.category, p.quantity))
        .collect();
    assert_eq!(bobs, ["BK-1 Books 3", "GD-1 Garden Tools 1"]);
    let popular = db.product_popularity(3).await.unwrap();
    assert_eq!(
        (popular[0].sku.as_str(), popular[0].units_sold),
        ("BK-1", 5)
    );

    // Migrated orders move on through the ledger.
    db.set_order_status(placed, OrderStatus::Shipped)
        .await
        .unwrap();
    assert_eq!(inventory(book, "on_hand").await, 10);
    assert_eq!(inventory(book, "reserved").await, 0);
    db.set_order_status(paid, OrderStatus::Cancelled)
        .await
        .unwrap();
    assert_eq!(db.get_product(book2).await.unwrap().stock, 6);
    assert_eq!(inventory(book2, "reserved").await, 0);
    assert_eq!(ledger_mismatches().await, 0);
}
