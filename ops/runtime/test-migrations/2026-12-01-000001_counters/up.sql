-- The counters table both services keep (see src/db.rs), alone: what the unit tests need.
CREATE TABLE counters (
    name TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
