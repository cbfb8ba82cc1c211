-- The import path for records that already exist elsewhere (POST /v1/{collection}/import).
-- Kept in step with ../../postgres/2026-12-08-000003_import_keys/up.sql.

-- One row per source row ever imported: its key (the source's own identity of the row) names
-- the record it became, so an import run twice or resumed registers nothing twice. The key is
-- indexed by its SHA-256 (keys run to 512 characters; the index stays narrow) and kept as
-- given beside it for the operator.
CREATE TABLE import_keys (
    kind TEXT NOT NULL,
    key_sha256 TEXT NOT NULL,          -- hex SHA-256 of source_key's UTF-8
    source_key TEXT NOT NULL,          -- as the importer sent it
    record_id TEXT NOT NULL,           -- the record it registered
    item_sha256 TEXT NOT NULL,         -- SHA-256 of the canonical JSON of {record, registration_no} as first imported
    imported_by TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (kind, key_sha256)
);

-- A registration number names one record at this node, whether review assigned it or an import
-- brought it (a historical 批准登记号); the import looks numbers up here before it takes one.
CREATE UNIQUE INDEX records_by_registration_no ON records (registration_no);
