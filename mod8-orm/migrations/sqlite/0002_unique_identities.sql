-- Look-alike accounts: usernames are unique by a normalised key and e-mail addresses
-- case-insensitively, enforced by the database itself (not only by the application).

-- The key `mod8_orm::validate::username_key` computes: NFKC, lower-cased, NFKC. The crate
-- writes it on every insert and rename. SQLite has no Unicode normalisation and its lower()
-- folds ASCII only, so existing rows are backfilled with lower(username): exact for ASCII
-- names; an older non-ASCII name keeps a key that only its exact lower-case spelling meets.
ALTER TABLE users ADD COLUMN username_key TEXT;
UPDATE users SET username_key = lower(username);
-- Rows created before the key existed may share one (`Grace` and `grace`): the oldest keeps
-- the key, the others get it suffixed with their id (usernames never contain ':'), so this
-- migration never fails on existing data and a new look-alike conflicts with the oldest.
UPDATE users SET username_key = username_key || ':' || hex(id)
WHERE EXISTS (
    SELECT 1 FROM users o
    WHERE o.username_key = users.username_key
      AND (o.created_at, o.id) < (users.created_at, users.id)
);
CREATE UNIQUE INDEX users_username_key_unique ON users (username_key);

-- The crate stores e-mail addresses lower-cased; the index keeps a writer that does not
-- (another service, a hand-written statement) from adding `Ada@x.org` beside `ada@x.org`.
CREATE UNIQUE INDEX users_email_lower_unique ON users (lower(email));
