-- Which catalogue this is. Kept in step with the other backend's
-- 2026-12-01-000014_health_checks/up.sql.
--
-- Every search index records the catalogue it was built from and checks it on every sync:
-- pointed at another catalogue (a new database, a wrong URL), it rebuilds instead of serving
-- another catalogue's entries. A dump carries the id, so a restored catalogue is the same
-- catalogue; what the index built after the dump was taken is caught by the fingerprint of
-- the change it last indexed (gateway/src/search/lineage.rs).
INSERT INTO catalogue_meta (name, value) VALUES ('catalogue_id', lower(hex(randomblob(16))));

-- /healthz reads each trusted node's latest refusal: without this it would scan the whole
-- audit table once per node (and a node refused in a loop fills it fast).
CREATE INDEX refusals_by_node ON refusals (node_id, at);
