DROP TABLE catalogue_meta;
