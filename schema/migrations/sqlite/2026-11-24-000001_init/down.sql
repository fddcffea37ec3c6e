DROP TABLE used_tickets; DROP TABLE revoked_tokens; DROP TABLE notifications; DROP TABLE follow_notices;
DROP TABLE follows; DROP TABLE comments; DROP TABLE like_notices; DROP TABLE likes; DROP TABLE posts; DROP TABLE users;
