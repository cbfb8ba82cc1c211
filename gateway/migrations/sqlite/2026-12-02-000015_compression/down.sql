-- Kept in step with the other backend's 2026-12-02-000015_compression/up.sql, which keeps
-- PostgreSQL's version rows in one piece, compresses what overflows with LZ4 and compares merge
-- keys byte for byte. SQLite already does all three (no compression; BINARY collation):
-- nothing to do.
SELECT 1;
