-- The catalogue's own settings. Kept in step with the other backend's
-- 2026-11-30-000012_entry_names/up.sql.
CREATE TABLE catalogue_meta (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- The secret that names catalogue entries (HMAC-SHA-256 of the first source's node/id):
-- a name made of the source's own node/id showed public readers which internal record an
-- entry began with. Generated once, here; it travels with every dump of the catalogue, so a
-- restore keeps every name. randomblob() draws from SQLite's ChaCha20 generator, seeded by
-- the operating system.
INSERT INTO catalogue_meta (name, value) VALUES ('entry_name_key', lower(hex(randomblob(32))));
