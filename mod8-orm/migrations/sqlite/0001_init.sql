-- mod8-orm schema (SQLite). Money is integer cents; UUIDs are 16-byte blobs; timestamps are RFC 3339 text in UTC, which sorts in time order.
CREATE TABLE countries (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    iso_code TEXT NOT NULL CONSTRAINT countries_iso_code_key UNIQUE,
    population INTEGER NOT NULL CHECK (population >= 0),
    gdp_per_capita_cents INTEGER NOT NULL CHECK (gdp_per_capita_cents >= 0)
);
CREATE UNIQUE INDEX countries_name_idx ON countries (name);

CREATE TABLE cities (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    region TEXT NOT NULL,
    country_id BLOB NOT NULL REFERENCES countries (id) ON DELETE CASCADE,
    CONSTRAINT cities_name_per_country UNIQUE (country_id, name)
);
CREATE INDEX cities_name_idx ON cities (name);

CREATE TABLE addresses (
    id BLOB PRIMARY KEY,
    street TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    city_id BLOB NOT NULL REFERENCES cities (id) ON DELETE RESTRICT
);
CREATE INDEX addresses_city_idx ON addresses (city_id);

CREATE TABLE users (
    id BLOB PRIMARY KEY,
    email TEXT NOT NULL CONSTRAINT users_email_key UNIQUE,
    username TEXT NOT NULL CONSTRAINT users_username_key UNIQUE,
    address_id BLOB REFERENCES addresses (id) ON DELETE SET NULL,
    profile_score REAL NOT NULL CHECK (profile_score >= 0 AND profile_score <= 100),
    is_verified BOOLEAN NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    last_active_at TEXT NOT NULL
);
CREATE INDEX users_address_idx ON users (address_id);
CREATE INDEX users_created_idx ON users (created_at, id);
CREATE INDEX users_profile_score_idx ON users (profile_score);

CREATE TABLE products (
    id BLOB PRIMARY KEY,
    sku TEXT NOT NULL CONSTRAINT products_sku_key UNIQUE,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    stock INTEGER NOT NULL CHECK (stock >= 0)
);
CREATE INDEX products_category_idx ON products (category, name);

CREATE TABLE orders (
    id BLOB PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('placed', 'paid', 'shipped', 'cancelled')),
    total_cents INTEGER NOT NULL CHECK (total_cents >= 0)
);
CREATE INDEX orders_user_idx ON orders (user_id, created_at);

CREATE TABLE order_items (
    order_id BLOB NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id BLOB NOT NULL REFERENCES products (id) ON DELETE RESTRICT,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX order_items_product_idx ON order_items (product_id);

CREATE TABLE outbox (
    id BLOB PRIMARY KEY,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT
);
CREATE INDEX outbox_pending_idx ON outbox (created_at, id) WHERE sent_at IS NULL;
