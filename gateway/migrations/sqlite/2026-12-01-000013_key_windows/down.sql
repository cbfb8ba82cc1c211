ALTER TABLE node_chain DROP COLUMN last_created_at;
ALTER TABLE node_keys DROP COLUMN compromised_since;
