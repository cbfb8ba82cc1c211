-- What the OAI-PMH provider (gateway/src/oai) asks of the change stream. Kept in step with the
-- other backend's 2026-12-02-000016_oai_change_lookups/up.sql.
--
-- An item's datestamp is its newest change a reader may hear of; a page of ListRecords asks it
-- of each entry on the page, by the entry it is in and by the entry it left (a move), so both
-- are looked up by entry, newest first, instead of scanning the stream.
CREATE INDEX changes_by_entry ON changes (unified_id, change_id);
CREATE INDEX changes_by_left_entry ON changes (moved_from, change_id) WHERE moved_from IS NOT NULL;
-- from/until select by when a change was applied: the first page of a harvest from a date
-- starts there rather than at the beginning of the stream.
CREATE INDEX changes_by_time ON changes (at);
