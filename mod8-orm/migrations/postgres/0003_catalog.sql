-- The catalog: a category tree, products with variants and images, inventory with its
-- append-only stock-movement ledger, reviews with per-product rating aggregates, carts, and
-- orders that reference variants and addresses. Existing data is carried forward: every
-- text category becomes a root category, every product gets one variant (its SKU, price and
-- stock), its stock an inventory row with an opening receipt (plus the reservations of its
-- open orders), and every order line points at that variant.

CREATE TABLE categories (
    id UUID PRIMARY KEY,
    parent_id UUID REFERENCES categories (id) ON DELETE RESTRICT,
    slug TEXT NOT NULL CONSTRAINT categories_slug_key UNIQUE,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX categories_parent_idx ON categories (parent_id);

-- One root category per distinct old text category (slugs compared lower-cased, spaces as
-- hyphens; the first spelling names it).
INSERT INTO categories (id, parent_id, slug, name, created_at)
SELECT gen_random_uuid(), NULL, slug, MIN(category), now()
FROM (SELECT category, regexp_replace(lower(trim(category)), '\s+', '-', 'g') AS slug
      FROM products) p
GROUP BY slug;

ALTER TABLE products
    ADD COLUMN category_id UUID REFERENCES categories (id) ON DELETE RESTRICT,
    ADD COLUMN brand TEXT,
    ADD COLUMN description TEXT NOT NULL DEFAULT '',
    ADD COLUMN attributes JSONB NOT NULL DEFAULT '{}',
    ADD COLUMN created_at TIMESTAMPTZ,
    ADD COLUMN updated_at TIMESTAMPTZ,
    ADD COLUMN version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD COLUMN archived_at TIMESTAMPTZ;
UPDATE products p SET
    category_id = c.id,
    created_at = now(),
    updated_at = now()
FROM categories c
WHERE c.slug = regexp_replace(lower(trim(p.category)), '\s+', '-', 'g');
ALTER TABLE products
    ALTER COLUMN category_id SET NOT NULL,
    ALTER COLUMN created_at SET NOT NULL,
    ALTER COLUMN updated_at SET NOT NULL;
CREATE INDEX products_category_created_idx ON products (category_id, created_at DESC, id)
    WHERE archived_at IS NULL;

CREATE TABLE product_variants (
    id UUID PRIMARY KEY,
    product_id UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    sku TEXT NOT NULL CONSTRAINT product_variants_sku_key UNIQUE,
    options JSONB NOT NULL DEFAULT '{}',
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    currency TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    position INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX product_variants_product_idx ON product_variants (product_id, position);
CREATE INDEX product_variants_price_idx ON product_variants (price_cents);

CREATE TABLE product_images (
    id UUID PRIMARY KEY,
    product_id UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    position INTEGER NOT NULL CHECK (position >= 0),
    url TEXT NOT NULL,
    alt_text TEXT NOT NULL DEFAULT '',
    CONSTRAINT product_images_position_key UNIQUE (product_id, position)
);

CREATE TABLE inventory (
    variant_id UUID PRIMARY KEY REFERENCES product_variants (id) ON DELETE CASCADE,
    on_hand BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT inventory_stock_check CHECK (on_hand >= reserved AND reserved >= 0)
);

CREATE TABLE stock_movements (
    id UUID PRIMARY KEY,
    variant_id UUID NOT NULL REFERENCES product_variants (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN
        ('receipt', 'reservation', 'release', 'sale', 'adjustment', 'return')),
    on_hand_delta BIGINT NOT NULL,
    reserved_delta BIGINT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    order_id UUID,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX stock_movements_variant_idx ON stock_movements (variant_id, created_at);
CREATE INDEX stock_movements_order_idx ON stock_movements (order_id) WHERE order_id IS NOT NULL;

CREATE TABLE reviews (
    id UUID PRIMARY KEY,
    product_id UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rating SMALLINT NOT NULL CHECK (rating BETWEEN 1 AND 5),
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    verified_purchase BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT reviews_one_per_user UNIQUE (product_id, user_id)
);
CREATE INDEX reviews_user_idx ON reviews (user_id);

CREATE TABLE product_ratings (
    product_id UUID PRIMARY KEY REFERENCES products (id) ON DELETE CASCADE,
    review_count BIGINT NOT NULL CHECK (review_count >= 0),
    rating_sum BIGINT NOT NULL CHECK (rating_sum >= 0)
);

CREATE TABLE cart_items (
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    variant_id UUID NOT NULL REFERENCES product_variants (id) ON DELETE CASCADE,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    added_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, variant_id)
);

ALTER TABLE orders
    ADD COLUMN shipping_address_id UUID REFERENCES addresses (id) ON DELETE RESTRICT,
    ADD COLUMN billing_address_id UUID REFERENCES addresses (id) ON DELETE RESTRICT;

-- Carry forward: one variant per product, with the product's id, SKU and price.
INSERT INTO product_variants (id, product_id, sku, options, price_cents, currency, position,
                              created_at)
SELECT id, id, sku, '{}', price_cents, 'EUR', 0, now() FROM products;

-- Old stock was taken at order time; open (placed or paid) orders now hold reservations.
INSERT INTO inventory (variant_id, on_hand, reserved, updated_at)
SELECT p.id, p.stock + COALESCE(r.units, 0), COALESCE(r.units, 0), now()
FROM products p
LEFT JOIN (SELECT oi.product_id, SUM(oi.quantity) AS units
           FROM order_items oi JOIN orders o ON o.id = oi.order_id
           WHERE o.status IN ('placed', 'paid')
           GROUP BY oi.product_id) r ON r.product_id = p.id;
INSERT INTO stock_movements (id, variant_id, kind, on_hand_delta, reserved_delta, reason,
                             order_id, created_at)
SELECT gen_random_uuid(), variant_id, 'receipt', on_hand, 0, 'opening balance', NULL, now()
FROM inventory WHERE on_hand <> 0;
INSERT INTO stock_movements (id, variant_id, kind, on_hand_delta, reserved_delta, reason,
                             order_id, created_at)
SELECT gen_random_uuid(), oi.product_id, 'reservation', 0, oi.quantity, 'opening balance',
       o.id, now()
FROM order_items oi JOIN orders o ON o.id = oi.order_id
WHERE o.status IN ('placed', 'paid');

-- Order lines reference the variant sold (and keep the product, which every analytics query
-- groups by); one line per variant.
ALTER TABLE order_items ADD COLUMN variant_id UUID REFERENCES product_variants (id)
    ON DELETE RESTRICT;
UPDATE order_items SET variant_id = product_id;
ALTER TABLE order_items ALTER COLUMN variant_id SET NOT NULL;
ALTER TABLE order_items DROP CONSTRAINT order_items_pkey;
ALTER TABLE order_items ADD PRIMARY KEY (order_id, variant_id);
CREATE INDEX order_items_variant_idx ON order_items (variant_id);

-- Price and stock live on variants and inventory now, the category in the tree.
DROP INDEX products_category_idx;
ALTER TABLE products DROP COLUMN category, DROP COLUMN price_cents, DROP COLUMN stock;
