-- Look-alike accounts: usernames are unique by a normalised key and e-mail addresses
-- case-insensitively, enforced by the database itself (not only by the application).

-- The key `mod8_orm::validate::username_key` computes: NFKC, lower-cased, NFKC. The crate
-- writes it on every insert and rename; existing rows are backfilled here (lower() follows
-- the database's ctype; ASCII is lowered the same everywhere).
ALTER TABLE users ADD COLUMN username_key TEXT;
UPDATE users SET username_key = normalize(lower(normalize(username, NFKC)), NFKC);
-- Rows created before the key existed may share one (`Grace` and `grace`): the oldest keeps
-- the key, the others get it suffixed with their id (usernames never contain ':'), so this
-- migration never fails on existing data and a new look-alike conflicts with the oldest.
UPDATE users u SET username_key = u.username_key || ':' || u.id::text
WHERE EXISTS (
    SELECT 1 FROM users o
    WHERE o.username_key = u.username_key AND (o.created_at, o.id) < (u.created_at, u.id)
);
ALTER TABLE users ALTER COLUMN username_key SET NOT NULL;
CREATE UNIQUE INDEX users_username_key_unique ON users (username_key);

-- The crate stores e-mail addresses lower-cased; the index keeps a writer that does not
-- (another service, a hand-written statement) from adding `Ada@x.org` beside `ada@x.org`.
CREATE UNIQUE INDEX users_email_lower_unique ON users (lower(email));
