ALTER TABLE nodes DROP COLUMN feed_token;
