ALTER TABLE changes DROP COLUMN source_audience;
ALTER TABLE record_funding DROP COLUMN classes;
ALTER TABLE record_versions DROP COLUMN disclosures;
