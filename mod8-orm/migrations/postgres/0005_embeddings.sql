-- Product embeddings for vector similarity, stored portably (a REAL[] of the deployment's
-- dimension) so this migration runs on any PostgreSQL. When the `vector` extension can be
-- created, mod8-orm adds a `vector` column kept equal to `embedding` by a trigger and an
-- HNSW index on it at connect time (not here: the extension may be missing, or the role may
-- not be allowed to create it).
--
-- `custom` rows were stored by the caller (their own model); the others are the crate's
-- default embedding of the product's text at `product_version`, recomputed when the product
-- changes.
CREATE TABLE product_embeddings (
    product_id UUID PRIMARY KEY REFERENCES products (id) ON DELETE CASCADE,
    dimension INTEGER NOT NULL CHECK (dimension > 0),
    embedding REAL[] NOT NULL CHECK (cardinality(embedding) = dimension),
    custom BOOLEAN NOT NULL DEFAULT FALSE,
    product_version BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
