-- The node's whole state. Kept in step with ../../sqlite/2026-11-26-000001_init/up.sql.

-- One row per record: what the registration API lists and what review works on.
CREATE TABLE records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    serial BIGINT NOT NULL,            -- listing order and cursor; the number in the id
    owner_uscc TEXT NOT NULL,          -- the institution whose submitters may see and edit it
    version BIGINT NOT NULL,           -- latest version (a withdrawal is a version too)
    state TEXT NOT NULL,               -- state of the latest version: submitted|approved|rejected|withdrawn
    published_version BIGINT,          -- version standing in the feed (NULL: none, or withdrawn from it)
    registration_no TEXT,
    registration_date TEXT,           -- date of first approval (登记日期), kept across revisions
    title TEXT NOT NULL,
    secrecy TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE UNIQUE INDEX records_by_serial ON records (kind, serial);
CREATE INDEX records_by_owner ON records (kind, owner_uscc, serial);

-- Every version ever submitted, with its review outcome.
CREATE TABLE record_versions (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,               -- submitted|approved|rejected|superseded|withdrawn
    document TEXT,                     -- NULL for a withdrawal
    submitted_by TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    reviewed_by TEXT,
    reviewed_at TEXT,
    reason TEXT,
    PRIMARY KEY (kind, id, version)
);

-- The transactional outbox: the node's log. seq is gap-free; batch_seq is set when sealed.
CREATE TABLE outbox (
    seq BIGINT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    op TEXT NOT NULL,
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    record TEXT,
    created_at TEXT NOT NULL,
    batch_seq BIGINT
);
CREATE INDEX outbox_unsealed ON outbox (batch_seq, seq);

-- Signed batches exactly as published and served by the feed.
CREATE TABLE batches (
    batch_seq BIGINT PRIMARY KEY NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    hash TEXT NOT NULL,
    bytes BYTEA NOT NULL,
    created_at TEXT NOT NULL,
    published_at TEXT
);
CREATE UNIQUE INDEX batches_by_last_seq ON batches (last_seq);

-- Gap-free counters: outbox seq, record ids, registration serials.
CREATE TABLE counters (
    name TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);

-- Idempotency-Key: the first response to a (principal, key), replayed on retry.
CREATE TABLE idempotency (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (principal, key)
);
