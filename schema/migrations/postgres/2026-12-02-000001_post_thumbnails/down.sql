ALTER TABLE posts DROP COLUMN thumbnail_key;
