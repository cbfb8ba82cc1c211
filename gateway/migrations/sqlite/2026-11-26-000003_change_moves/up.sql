-- A revision can move a record from one unified entry to another (a new merge key joins it
-- to an entry that already exists). The change names the entry the record is in now; the
-- entry it left must be told too, or a follower keeps the record there forever.
-- Kept in step with ../../postgres/2026-11-26-000003_change_moves/up.sql.
ALTER TABLE changes ADD COLUMN moved_from TEXT;
