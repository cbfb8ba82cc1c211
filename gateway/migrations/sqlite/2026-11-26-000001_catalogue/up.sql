-- The national catalogue. Kept in step with ../../postgres/2026-11-26-000001_catalogue/up.sql.

-- Trust store: the nodes of the federation and their keys.
CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY NOT NULL,
    name TEXT,
    feed_url TEXT,                    -- where the puller reads the node's signed feed
    added_at TEXT NOT NULL
);
CREATE TABLE node_keys (
    node_id TEXT NOT NULL REFERENCES nodes (node_id),
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,         -- raw Ed25519, base64
    valid_from TEXT,                  -- RFC 3339; NULL = always
    valid_until TEXT,
    revoked_at TEXT,
    added_at TEXT NOT NULL,
    PRIMARY KEY (node_id, key_id)
);

-- Per node: where its chain stands (the cursor of every transport).
CREATE TABLE node_chain (
    node_id TEXT PRIMARY KEY NOT NULL REFERENCES nodes (node_id),
    next_batch_seq BIGINT NOT NULL,
    next_seq BIGINT NOT NULL,
    prev_batch_hash TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every accepted batch's signed header: with an entry and its proof, enough to re-verify.
CREATE TABLE batches (
    node_id TEXT NOT NULL,
    batch_seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    header TEXT NOT NULL,             -- the header JSON as signed
    signature TEXT NOT NULL,
    transport TEXT NOT NULL,          -- amqp | feed
    received_at TEXT NOT NULL,
    PRIMARY KEY (node_id, batch_seq)
);

-- Every applied version, with its provenance. History: never deleted.
CREATE TABLE record_versions (
    node_id TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    op TEXT NOT NULL,
    seq BIGINT NOT NULL,
    batch_seq BIGINT NOT NULL,
    entry TEXT NOT NULL,              -- the entry's canonical JSON (the Merkle leaf)
    proof TEXT NOT NULL,              -- inclusion proof JSON
    applied_at TEXT NOT NULL,
    PRIMARY KEY (node_id, id, version)
);

-- The current state of each source record (its content is the entry of its current version in
-- record_versions: stored once).
CREATE TABLE records (
    node_id TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    version BIGINT NOT NULL,
    withdrawn INTEGER NOT NULL,       -- 0/1
    secrecy TEXT NOT NULL,
    title TEXT NOT NULL,
    registration_no TEXT,
    program TEXT,                     -- projects: their program; achievements: NULL
    project_no TEXT,
    unified_id TEXT NOT NULL,
    first_change BIGINT NOT NULL,     -- when this source first appeared (merge precedence)
    last_change BIGINT NOT NULL,
    PRIMARY KEY (node_id, id)
);
CREATE INDEX records_by_unified ON records (unified_id);
CREATE INDEX records_by_project ON records (program, project_no);

-- An achievement's funding references (program + project number), for linking.
CREATE TABLE record_funding (
    node_id TEXT NOT NULL,
    id TEXT NOT NULL,
    program TEXT NOT NULL,
    project_no TEXT NOT NULL,
    PRIMARY KEY (node_id, id, program, project_no)
);
CREATE INDEX record_funding_by_project ON record_funding (program, project_no);

-- Merge keys: which unified entry a registration number, project or patent belongs to.
CREATE TABLE merge_keys (
    kind TEXT NOT NULL,
    merge_key TEXT NOT NULL,
    unified_id TEXT NOT NULL,
    PRIMARY KEY (kind, merge_key)
);

-- The change stream: one row per applied change, monotonic change_id (counter-assigned).
CREATE TABLE changes (
    change_id BIGINT PRIMARY KEY NOT NULL,
    node_id TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    version BIGINT NOT NULL,
    op TEXT NOT NULL,
    unified_id TEXT NOT NULL,
    at TEXT NOT NULL
);

-- Refused batches (audit): never applied.
CREATE TABLE refusals (
    at TEXT NOT NULL,
    node_id TEXT,
    batch_seq BIGINT,
    transport TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
);

-- Entries kept out of the catalogue: classified or invalid. Never their content.
CREATE TABLE quarantine (
    at TEXT NOT NULL,
    node_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    reason TEXT NOT NULL
);

CREATE TABLE counters (
    name TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
