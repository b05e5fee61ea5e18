-- Full-text product search (`mod8_orm::ProductSearch`).
--
-- `product_search_docs` holds the searchable text of every product that is not archived
-- (its category path included), kept in sync with `products` and `categories` by triggers.
-- Its INTEGER PRIMARY KEY is the rowid both FTS5 indexes use as external content: a stable
-- rowid (an implicit rowid, as `products` has, may change on VACUUM).
--
-- - `product_fts`: words, Porter-stemmed, diacritics removed (`cafe` finds `café`); ranked
--   with bm25() weighted like PostgreSQL's A/B/C/D (name, brand, category path, description).
-- - `product_trigrams`: trigrams of the name, brand and category path, diacritics removed:
--   the candidates of the typo fallback.

CREATE TABLE product_search_docs (
    rowid INTEGER PRIMARY KEY,
    product_id BLOB NOT NULL UNIQUE REFERENCES products (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    brand TEXT NOT NULL,
    category_path TEXT NOT NULL,
    description TEXT NOT NULL
);

CREATE VIRTUAL TABLE product_fts USING fts5(
    name, brand, category_path, description,
    content = 'product_search_docs', content_rowid = 'rowid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE VIRTUAL TABLE product_trigrams USING fts5(
    name, brand, category_path,
    content = 'product_search_docs', content_rowid = 'rowid',
    tokenize = 'trigram remove_diacritics 1'
);

CREATE TRIGGER product_search_docs_ai AFTER INSERT ON product_search_docs BEGIN
    INSERT INTO product_fts (rowid, name, brand, category_path, description)
    VALUES (NEW.rowid, NEW.name, NEW.brand, NEW.category_path, NEW.description);
    INSERT INTO product_trigrams (rowid, name, brand, category_path)
    VALUES (NEW.rowid, NEW.name, NEW.brand, NEW.category_path);
END;

CREATE TRIGGER product_search_docs_ad AFTER DELETE ON product_search_docs BEGIN
    INSERT INTO product_fts (product_fts, rowid, name, brand, category_path, description)
    VALUES ('delete', OLD.rowid, OLD.name, OLD.brand, OLD.category_path, OLD.description);
    INSERT INTO product_trigrams (product_trigrams, rowid, name, brand, category_path)
    VALUES ('delete', OLD.rowid, OLD.name, OLD.brand, OLD.category_path);
END;

CREATE TRIGGER product_search_docs_au AFTER UPDATE ON product_search_docs BEGIN
    INSERT INTO product_fts (product_fts, rowid, name, brand, category_path, description)
    VALUES ('delete', OLD.rowid, OLD.name, OLD.brand, OLD.category_path, OLD.description);
    INSERT INTO product_trigrams (product_trigrams, rowid, name, brand, category_path)
    VALUES ('delete', OLD.rowid, OLD.name, OLD.brand, OLD.category_path);
    INSERT INTO product_fts (rowid, name, brand, category_path, description)
    VALUES (NEW.rowid, NEW.name, NEW.brand, NEW.category_path, NEW.description);
    INSERT INTO product_trigrams (rowid, name, brand, category_path)
    VALUES (NEW.rowid, NEW.name, NEW.brand, NEW.category_path);
END;

-- The names of a category and its ancestors, root first, space-separated (as
-- PostgreSQL's mod8_category_path), for the category of the product row `NEW`.
CREATE TRIGGER products_search_ai AFTER INSERT ON products
WHEN NEW.archived_at IS NULL BEGIN
    INSERT INTO product_search_docs (product_id, name, brand, category_path, description)
    VALUES (NEW.id, NEW.name, COALESCE(NEW.brand, ''),
        COALESCE((WITH RECURSIVE up(id, parent_id, name, depth) AS (
                SELECT id, parent_id, name, 0 FROM categories WHERE id = NEW.category_id
                UNION ALL SELECT c.id, c.parent_id, c.name, up.depth + 1
                FROM categories c JOIN up ON c.id = up.parent_id WHERE up.depth < 1000)
            SELECT group_concat(name, ' ') FROM (SELECT name FROM up ORDER BY depth DESC)),
            ''),
        NEW.description);
END;

-- An update re-indexes the product (or drops it when it was archived).
CREATE TRIGGER products_search_au
AFTER UPDATE OF name, brand, description, category_id, archived_at ON products BEGIN
    DELETE FROM product_search_docs WHERE product_id = OLD.id;
    INSERT INTO product_search_docs (product_id, name, brand, category_path, description)
    SELECT NEW.id, NEW.name, COALESCE(NEW.brand, ''),
        COALESCE((WITH RECURSIVE up(id, parent_id, name, depth) AS (
                SELECT id, parent_id, name, 0 FROM categories WHERE id = NEW.category_id
                UNION ALL SELECT c.id, c.parent_id, c.name, up.depth + 1
                FROM categories c JOIN up ON c.id = up.parent_id WHERE up.depth < 1000)
            SELECT group_concat(name, ' ') FROM (SELECT name FROM up ORDER BY depth DESC)),
            ''),
        NEW.description
    WHERE NEW.archived_at IS NULL;
END;

CREATE TRIGGER products_search_ad AFTER DELETE ON products BEGIN
    DELETE FROM product_search_docs WHERE product_id = OLD.id;
END;

-- A renamed or moved category changes the path of every product below it.
CREATE TRIGGER categories_search_au AFTER UPDATE OF name, parent_id ON categories
WHEN OLD.name IS NOT NEW.name OR OLD.parent_id IS NOT NEW.parent_id BEGIN
    UPDATE product_search_docs SET category_path = COALESCE((
        WITH RECURSIVE up(id, parent_id, name, depth) AS (
            SELECT c.id, c.parent_id, c.name, 0 FROM categories c
            JOIN products p ON p.category_id = c.id
            WHERE p.id = product_search_docs.product_id
            UNION ALL SELECT c.id, c.parent_id, c.name, up.depth + 1
            FROM categories c JOIN up ON c.id = up.parent_id WHERE up.depth < 1000)
        SELECT group_concat(name, ' ') FROM (SELECT name FROM up ORDER BY depth DESC)), '')
    WHERE product_id IN (
        SELECT p.id FROM products p WHERE p.category_id IN (
            WITH RECURSIVE sub(id) AS (
                SELECT NEW.id
                UNION ALL SELECT c.id FROM categories c JOIN sub ON c.parent_id = sub.id)
            SELECT id FROM sub));
END;

-- Existing products.
INSERT INTO product_search_docs (product_id, name, brand, category_path, description)
SELECT p.id, p.name, COALESCE(p.brand, ''),
    COALESCE((WITH RECURSIVE up(id, parent_id, name, depth) AS (
            SELECT id, parent_id, name, 0 FROM categories WHERE id = p.category_id
            UNION ALL SELECT c.id, c.parent_id, c.name, up.depth + 1
            FROM categories c JOIN up ON c.id = up.parent_id WHERE up.depth < 1000)
        SELECT group_concat(name, ' ') FROM (SELECT name FROM up ORDER BY depth DESC)), ''),
    p.description
FROM products p WHERE p.archived_at IS NULL;
