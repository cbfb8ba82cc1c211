ALTER TABLE changes DROP COLUMN moved_from;
