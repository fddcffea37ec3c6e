ALTER TABLE users DROP COLUMN reach_version;
DROP INDEX notifications_actor_idx;
DROP TABLE mutes;
DROP TABLE blocks;
