-- Every key the node ever signed with, served at GET /v1/keys so that batches signed before a
-- rotation stay verifiable from the node. Kept in step with the other backend's
-- 2026-12-01-000002_key_history/up.sql.
CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY NOT NULL,  -- ed25519: + 16 hex, derived from the key
    public_key TEXT NOT NULL,          -- raw Ed25519, base64
    loaded_at TEXT NOT NULL,           -- when the node first started with it
    first_batch_seq BIGINT,            -- the first batch it signed (NULL: none yet)
    valid_from TEXT,                   -- created_at of that batch
    valid_until TEXT                   -- created_at of the first batch of the next key (NULL: current)
);

-- Which key signed each batch, so the chain itself says where each key's window begins.
-- Batches sealed before this migration carry it in their signed header.
ALTER TABLE batches ADD COLUMN key_id TEXT;
UPDATE batches SET key_id = json_extract(CAST(bytes AS TEXT), '$.header.key_id');
