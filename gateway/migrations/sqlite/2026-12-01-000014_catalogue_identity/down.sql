DELETE FROM catalogue_meta WHERE name = 'catalogue_id';
