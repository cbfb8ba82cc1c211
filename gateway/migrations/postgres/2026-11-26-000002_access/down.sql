DROP TABLE read_audit;
DROP TABLE consumer_tokens;
