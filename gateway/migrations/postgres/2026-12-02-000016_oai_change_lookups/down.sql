DROP INDEX changes_by_time;
DROP INDEX changes_by_left_entry;
DROP INDEX changes_by_entry;
