-- Selective disclosure (batch format 2) and what readers may infer. Kept in step with the
-- other backend's 2026-11-29-000011_disclosures/up.sql.

-- The disclosures of a version's record (JSON array of disclosure texts; NULL for a
-- withdrawal). `entry` stays the Merkle leaf: the entry in placeholder form.
ALTER TABLE record_versions ADD COLUMN disclosures TEXT;

-- A link made through a hidden funding reference is shown only to readers of its classes
-- ('' = everyone who may see the record; else e.g. 'commercial').
ALTER TABLE record_funding ADD COLUMN classes TEXT NOT NULL DEFAULT '';

-- Who could see the changed source record, before or after the change (0 public, 1 internal
-- readers only, 2 nobody). A change of a source a reader never could see changes nothing the
-- reader sees, so the reader is not told of it at all (not even that it happened).
ALTER TABLE changes ADD COLUMN source_audience BIGINT;
