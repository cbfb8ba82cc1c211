-- Consumers of the read APIs and the audit of their non-public reads.
-- Kept in step with ../../postgres/2026-11-26-000002_access/up.sql.

-- Bearer tokens, by SHA-256 digest (the token itself is shown once, never stored).
CREATE TABLE consumer_tokens (
    token_sha256 TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    entitlements TEXT NOT NULL,       -- comma list: internal,commercial,personal
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- Who read what, when: every read by a consumer with more than the public entitlement.
CREATE TABLE read_audit (
    at TEXT NOT NULL,
    consumer TEXT NOT NULL,
    entitlements TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    subject TEXT NOT NULL
);
