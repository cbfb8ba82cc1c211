-- The bearer token the feed puller presents to the node's signed feed (GET /v1/feed), which
-- serves enrolled gateways only (DESIGN.md §4). Kept with the feed URL it belongs to; set with
-- `rix trust add --feed-token-file`, never listed or logged. NULL: the puller sends none.
-- Kept in step with ../../sqlite/2026-11-29-000010_feed_credentials/up.sql.
ALTER TABLE nodes ADD COLUMN feed_token TEXT;
