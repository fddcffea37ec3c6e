DROP INDEX notifications_group_idx;
ALTER TABLE notifications DROP COLUMN group_id;
DROP TABLE notification_groups;
ALTER TABLE users DROP COLUMN group_version;
