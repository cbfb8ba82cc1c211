DROP INDEX refusals_by_node;
DELETE FROM catalogue_meta WHERE name = 'catalogue_id';
