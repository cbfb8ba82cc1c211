DROP INDEX records_by_registration_no;
DROP TABLE import_keys;
