-- Full-text product search (`mod8_orm::ProductSearch`).
--
-- pg_trgm and unaccent are "trusted" extensions: the database owner (the role mod8 connects
-- as, which created its database) may create them without being a superuser. Both ship
-- with PostgreSQL's contrib package. A server built without unaccent (some bundled
-- distributions carry only pg_trgm and pgvector) gets a `unaccent(text)` of its own that
-- folds the common Latin accents, and a configuration without the unaccent dictionary:
-- search works there, with accents folded only in the typo fallback.
DO $mod8$
BEGIN
    CREATE EXTENSION IF NOT EXISTS unaccent;
EXCEPTION WHEN OTHERS THEN
    CREATE FUNCTION unaccent(t TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $fold$ SELECT translate(t,
        'áàâäãåāéèêëēíìîïīóòôöõøōúùûüūçñýÿÁÀÂÄÃÅĀÉÈÊËĒÍÌÎÏĪÓÒÔÖÕØŌÚÙÛÜŪÇÑÝ',
        'aaaaaaaeeeeeiiiiiooooooouuuuucnyyAAAAAAAEEEEEIIIIIOOOOOOOUUUUUCNY') $fold$;
END
$mod8$;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- English stemming and stop words, with accents removed first: `cafe` finds `café`, and
-- `ts_headline` with this configuration highlights the accented original.
CREATE TEXT SEARCH CONFIGURATION mod8_search (COPY = english);
DO $mod8$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'unaccent') THEN
        ALTER TEXT SEARCH CONFIGURATION mod8_search
            ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem;
    END IF;
END
$mod8$;

-- The names of a category and its ancestors, root first, space-separated.
CREATE FUNCTION mod8_category_path(category UUID) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE up(id, parent_id, name, depth) AS (
        SELECT id, parent_id, name, 0 FROM categories WHERE id = category
        UNION ALL
        SELECT c.id, c.parent_id, c.name, up.depth + 1
        FROM categories c JOIN up ON c.id = up.parent_id
        WHERE up.depth < 1000)
    SELECT COALESCE(string_agg(name, ' ' ORDER BY depth DESC), '') FROM up
$$;

-- The category path lives in another table, and a generated column may only read its own
-- row: so the path is copied into `category_path` by a trigger (on the product's insert or
-- update, and on a category's rename or move for every product below it), and the weighted
-- vector is a generated column over the product's own columns. `search_words` (the words of
-- the name, brand and category path, unaccented and lower-cased) is what the typo fallback compares with
-- pg_trgm; `unaccent()` is not immutable, so it is trigger-maintained too.
ALTER TABLE products
    ADD COLUMN category_path TEXT NOT NULL DEFAULT '',
    ADD COLUMN search_words TEXT NOT NULL DEFAULT '';

CREATE FUNCTION mod8_products_search_fields() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.category_path := mod8_category_path(NEW.category_id);
    -- Words only, one space apart, so a search splits them without a regular expression.
    NEW.search_words := btrim(regexp_replace(lower(unaccent(
        NEW.name || ' ' || COALESCE(NEW.brand, '') || ' ' || NEW.category_path)),
        '[^[:alnum:]]+', ' ', 'g'));
    RETURN NEW;
END
$$;

CREATE TRIGGER products_search_fields
    BEFORE INSERT OR UPDATE OF name, brand, category_id ON products
    FOR EACH ROW EXECUTE FUNCTION mod8_products_search_fields();

CREATE FUNCTION mod8_categories_search_paths() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Touching category_id re-runs the products' trigger, which recomputes their path.
    UPDATE products SET category_id = category_id
    WHERE category_id IN (
        WITH RECURSIVE sub(id) AS (
            SELECT NEW.id
            UNION ALL SELECT c.id FROM categories c JOIN sub ON c.parent_id = sub.id)
        SELECT id FROM sub);
    RETURN NULL;
END
$$;

CREATE TRIGGER categories_search_paths
    AFTER UPDATE OF name, parent_id ON categories
    FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.parent_id IS DISTINCT FROM NEW.parent_id)
    EXECUTE FUNCTION mod8_categories_search_paths();

-- Existing products get their fields (the trigger runs on this update).
UPDATE products SET category_id = category_id;

ALTER TABLE products ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('mod8_search', name), 'A')
    || setweight(to_tsvector('mod8_search', COALESCE(brand, '')), 'B')
    || setweight(to_tsvector('mod8_search', category_path), 'C')
    || setweight(to_tsvector('mod8_search', description), 'D')) STORED;

CREATE INDEX products_search_vector_idx ON products USING GIN (search_vector);
CREATE INDEX products_search_words_trgm_idx ON products USING GIN (search_words gin_trgm_ops);
