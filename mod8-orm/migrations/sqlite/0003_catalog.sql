-- The catalog: a category tree, products with variants and images, inventory with its
-- append-only stock-movement ledger, reviews with per-product rating aggregates, carts, and
-- orders that reference variants and addresses. Existing data is carried forward: every
-- text category becomes a root category, every product gets one variant (its SKU, price and
-- stock), its stock an inventory row with an opening receipt (plus the reservations of its
-- open orders), and every order line points at that variant.
--
-- SQLite cannot add NOT NULL references or change a primary key in place, so `products` and
-- `order_items` are rebuilt: the new tables are created beside the old ones (tables that
-- reference products point at `products_new`, which the final rename rewrites to
-- `products`), filled, and the old ones dropped child first, so no foreign key ever sees a
-- missing row.

CREATE TABLE categories (
    id BLOB PRIMARY KEY,
    parent_id BLOB REFERENCES categories (id) ON DELETE RESTRICT,
    slug TEXT NOT NULL CONSTRAINT categories_slug_key UNIQUE,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX categories_parent_idx ON categories (parent_id);

-- One root category per distinct old text category (slugs: trimmed, lower-cased, spaces as
-- hyphens; the first spelling names it).
INSERT INTO categories (id, parent_id, slug, name, created_at)
SELECT randomblob(16), NULL, slug, MIN(category), strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
FROM (SELECT category, replace(lower(trim(category)), ' ', '-') AS slug FROM products)
GROUP BY slug;

CREATE TABLE products_new (
    id BLOB PRIMARY KEY,
    sku TEXT NOT NULL CONSTRAINT products_sku_key UNIQUE,
    name TEXT NOT NULL,
    category_id BLOB NOT NULL REFERENCES categories (id) ON DELETE RESTRICT,
    brand TEXT,
    description TEXT NOT NULL DEFAULT '',
    attributes TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    archived_at TEXT
);
INSERT INTO products_new (id, sku, name, category_id, created_at, updated_at)
SELECT p.id, p.sku, p.name, c.id, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'),
       strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
FROM products p JOIN categories c ON c.slug = replace(lower(trim(p.category)), ' ', '-');

CREATE TABLE product_variants (
    id BLOB PRIMARY KEY,
    product_id BLOB NOT NULL REFERENCES products_new (id) ON DELETE CASCADE,
    sku TEXT NOT NULL CONSTRAINT product_variants_sku_key UNIQUE,
    options TEXT NOT NULL DEFAULT '{}',
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency GLOB '[A-Z][A-Z][A-Z]'),
    position INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX product_variants_product_idx ON product_variants (product_id, position);
CREATE INDEX product_variants_price_idx ON product_variants (price_cents);

CREATE TABLE product_images (
    id BLOB PRIMARY KEY,
    product_id BLOB NOT NULL REFERENCES products_new (id) ON DELETE CASCADE,
    position INTEGER NOT NULL CHECK (position >= 0),
    url TEXT NOT NULL,
    alt_text TEXT NOT NULL DEFAULT '',
    CONSTRAINT product_images_position_key UNIQUE (product_id, position)
);

CREATE TABLE inventory (
    variant_id BLOB PRIMARY KEY REFERENCES product_variants (id) ON DELETE CASCADE,
    on_hand INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT inventory_stock_check CHECK (on_hand >= reserved AND reserved >= 0)
);

CREATE TABLE stock_movements (
    id BLOB PRIMARY KEY,
    variant_id BLOB NOT NULL REFERENCES product_variants (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN
        ('receipt', 'reservation', 'release', 'sale', 'adjustment', 'return')),
    on_hand_delta INTEGER NOT NULL,
    reserved_delta INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    order_id BLOB,
    created_at TEXT NOT NULL
);
CREATE INDEX stock_movements_variant_idx ON stock_movements (variant_id, created_at);
CREATE INDEX stock_movements_order_idx ON stock_movements (order_id) WHERE order_id IS NOT NULL;

CREATE TABLE reviews (
    id BLOB PRIMARY KEY,
    product_id BLOB NOT NULL REFERENCES products_new (id) ON DELETE CASCADE,
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    verified_purchase BOOLEAN NOT NULL,
    created_at TEXT NOT NULL,
    CONSTRAINT reviews_one_per_user UNIQUE (product_id, user_id)
);
CREATE INDEX reviews_user_idx ON reviews (user_id);

CREATE TABLE product_ratings (
    product_id BLOB PRIMARY KEY REFERENCES products_new (id) ON DELETE CASCADE,
    review_count INTEGER NOT NULL CHECK (review_count >= 0),
    rating_sum INTEGER NOT NULL CHECK (rating_sum >= 0)
);

CREATE TABLE cart_items (
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    variant_id BLOB NOT NULL REFERENCES product_variants (id) ON DELETE CASCADE,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    added_at TEXT NOT NULL,
    PRIMARY KEY (user_id, variant_id)
);

ALTER TABLE orders ADD COLUMN shipping_address_id BLOB
    REFERENCES addresses (id) ON DELETE RESTRICT;
ALTER TABLE orders ADD COLUMN billing_address_id BLOB
    REFERENCES addresses (id) ON DELETE RESTRICT;

-- Carry forward: one variant per product, with the product's id, SKU and price.
INSERT INTO product_variants (id, product_id, sku, options, price_cents, currency, position,
                              created_at)
SELECT id, id, sku, '{}', price_cents, 'EUR', 0, strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
FROM products;

-- Old stock was taken at order time; open (placed or paid) orders now hold reservations.
INSERT INTO inventory (variant_id, on_hand, reserved, updated_at)
SELECT p.id, p.stock + COALESCE(r.units, 0), COALESCE(r.units, 0),
       strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
FROM products p
LEFT JOIN (SELECT oi.product_id, SUM(oi.quantity) AS units
           FROM order_items oi JOIN orders o ON o.id = oi.order_id
           WHERE o.status IN ('placed', 'paid')
           GROUP BY oi.product_id) r ON r.product_id = p.id;
INSERT INTO stock_movements (id, variant_id, kind, on_hand_delta, reserved_delta, reason,
                             order_id, created_at)
SELECT randomblob(16), variant_id, 'receipt', on_hand, 0, 'opening balance', NULL,
       strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
FROM inventory WHERE on_hand <> 0;
INSERT INTO stock_movements (id, variant_id, kind, on_hand_delta, reserved_delta, reason,
                             order_id, created_at)
SELECT randomblob(16), oi.product_id, 'reservation', 0, oi.quantity, 'opening balance', o.id,
       strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
FROM order_items oi JOIN orders o ON o.id = oi.order_id
WHERE o.status IN ('placed', 'paid');

-- Order lines reference the variant sold (and keep the product, which every analytics query
-- groups by); one line per variant.
CREATE TABLE order_items_new (
    order_id BLOB NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id BLOB NOT NULL REFERENCES products_new (id) ON DELETE RESTRICT,
    variant_id BLOB NOT NULL REFERENCES product_variants (id) ON DELETE RESTRICT,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, variant_id)
);
INSERT INTO order_items_new (order_id, product_id, variant_id, quantity, unit_price_cents)
SELECT order_id, product_id, product_id, quantity, unit_price_cents FROM order_items;

DROP TABLE order_items;
DROP TABLE products;
ALTER TABLE products_new RENAME TO products;
ALTER TABLE order_items_new RENAME TO order_items;
CREATE INDEX products_category_created_idx ON products (category_id, created_at DESC, id)
    WHERE archived_at IS NULL;
CREATE INDEX order_items_product_idx ON order_items (product_id);
CREATE INDEX order_items_variant_idx ON order_items (variant_id);
