-- Replies stored under an Idempotency-Key are deleted by age (config idempotency_retention_days).
CREATE INDEX idempotency_created_at ON idempotency (created_at);
