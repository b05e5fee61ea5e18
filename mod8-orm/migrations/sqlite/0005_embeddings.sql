-- Product embeddings for vector similarity: `embedding` holds `dimension` little-endian
-- 32-bit floats. mod8-orm builds its in-process approximate index from this table on start.
--
-- `custom` rows were stored by the caller (their own model); the others are the crate's
-- default embedding of the product's text at `product_version`, recomputed when the product
-- changes.
CREATE TABLE product_embeddings (
    product_id BLOB PRIMARY KEY REFERENCES products (id) ON DELETE CASCADE,
    dimension INTEGER NOT NULL CHECK (dimension > 0),
    embedding BLOB NOT NULL CHECK (length(embedding) = 4 * dimension),
    custom INTEGER NOT NULL DEFAULT 0,
    product_version INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
