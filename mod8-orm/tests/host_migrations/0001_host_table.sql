-- A host application's own migration, applied with sqlx's migrator next to mod8-orm's.
CREATE TABLE host_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
