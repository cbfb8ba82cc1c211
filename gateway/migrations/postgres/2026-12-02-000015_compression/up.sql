-- How a version's texts and the merge keys are stored. Kept in step with the other backend's
-- 2026-12-02-000015_compression/up.sql (which has nothing to change).
--
-- A version row (entry ~2.2 KB, proof ~0.6 KB, disclosures ~0.6 KB) is over PostgreSQL's default
-- 2 KB toast threshold, so every insert tried to compress it with pglz (a sixth of the server's
-- time in the ingest's commit) and then, since signed entries of salted digests hardly compress
-- (2,181 → 2,097 bytes), moved the entry out to the TOAST table and its index: three inserts
-- for one row. Kept in the row up to a page's worth, a version is one insert; measured on 4,844
-- real versions: 25 % less time to insert, the same size on disk. Rows still over it (a very
-- large record) are compressed with LZ4, cheaper than pglz for the same result. Only rows
-- written from now on change; older rows stay readable as they are.
ALTER TABLE record_versions SET (toast_tuple_target = 8160);
ALTER TABLE record_versions
    ALTER COLUMN entry SET COMPRESSION lz4,
    ALTER COLUMN proof SET COMPRESSION lz4,
    ALTER COLUMN disclosures SET COMPRESSION lz4;

-- Merge keys are compared byte for byte: they are identifiers (`reg:…`, `pat:number|title`), never
-- shown sorted. Under the database's locale every comparison in their index went through
-- strcoll; in "C" it is memcmp, and inserting a batch's keys took 40 % less time.
ALTER TABLE merge_keys ALTER COLUMN merge_key TYPE TEXT COLLATE "C";
