CREATE INDEX likes_user_idx ON likes (user_id, post_id);
ALTER TABLE notifications ADD CONSTRAINT notifications_recipient_id_seq_key UNIQUE (recipient_id, seq);
