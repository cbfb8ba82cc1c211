-- Key windows that hold up over a rebuild. Kept in step with the other backend's
-- 2026-12-01-000013_key_windows/up.sql.

-- A key that may be in other hands since this time (RFC 3339): batches it signed from then on
-- are refused, earlier ones stay accepted (`rix trust revoke --compromised-since`). Unlike
-- revoked_at, which refuses every batch the key ever signed, it lets the catalogue be rebuilt
-- from the feeds with the history the key signed while it was safe.
ALTER TABLE node_keys ADD COLUMN compromised_since TEXT;

-- The created_at of the last batch accepted in the node's chain: the next batch may not be
-- dated earlier, so a retired or compromised key cannot sign a batch dated back into its
-- window. Filled for chains already under way from the stored header of their last batch.
ALTER TABLE node_chain ADD COLUMN last_created_at TEXT;
UPDATE node_chain SET last_created_at = (
    SELECT b.header::jsonb ->> 'created_at' FROM batches b
    WHERE b.node_id = node_chain.node_id AND b.batch_seq = node_chain.next_batch_seq - 1
);
