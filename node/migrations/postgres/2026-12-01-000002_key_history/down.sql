ALTER TABLE batches DROP COLUMN key_id;
DROP TABLE signing_keys;
