ALTER TABLE record_versions RESET (toast_tuple_target);
ALTER TABLE record_versions
    ALTER COLUMN entry SET COMPRESSION pglz,
    ALTER COLUMN proof SET COMPRESSION pglz,
    ALTER COLUMN disclosures SET COMPRESSION pglz;
ALTER TABLE merge_keys ALTER COLUMN merge_key TYPE TEXT COLLATE "default";
