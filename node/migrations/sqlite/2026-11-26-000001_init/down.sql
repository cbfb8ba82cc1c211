DROP TABLE idempotency;
DROP TABLE counters;
DROP TABLE batches;
DROP TABLE outbox;
DROP TABLE record_versions;
DROP TABLE records;
