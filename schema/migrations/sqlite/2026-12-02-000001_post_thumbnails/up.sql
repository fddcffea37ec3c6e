-- The thumbnail of each post's image (`<sha256>.<ext>` under the media directory). NULL for
-- posts stored before thumbnails existed: the API then serves the display image in its place.
ALTER TABLE posts ADD COLUMN thumbnail_key TEXT;
