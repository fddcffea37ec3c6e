DELETE FROM likes WHERE NOT EXISTS (SELECT 1 FROM posts WHERE posts.id = likes.post_id);
DELETE FROM like_notices WHERE NOT EXISTS (SELECT 1 FROM posts WHERE posts.id = like_notices.post_id);
DELETE FROM notifications WHERE post_id IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM posts WHERE posts.id = notifications.post_id);
ALTER TABLE likes
    ADD CONSTRAINT likes_post_id_fkey FOREIGN KEY (post_id) REFERENCES posts(id) ON DELETE CASCADE,
    ADD CONSTRAINT likes_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE like_notices
    ADD CONSTRAINT like_notices_post_id_fkey FOREIGN KEY (post_id) REFERENCES posts(id) ON DELETE CASCADE,
    ADD CONSTRAINT like_notices_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE notifications
    ADD CONSTRAINT notifications_post_id_fkey FOREIGN KEY (post_id) REFERENCES posts(id) ON DELETE CASCADE,
    ADD CONSTRAINT notifications_recipient_id_fkey FOREIGN KEY (recipient_id) REFERENCES users(id) ON DELETE CASCADE,
    ADD CONSTRAINT notifications_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE notification_groups
    ADD CONSTRAINT notification_groups_recipient_id_fkey FOREIGN KEY (recipient_id) REFERENCES users(id) ON DELETE CASCADE;
