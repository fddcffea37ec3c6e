DROP TABLE notification_preferences;
DROP TABLE push_jobs;
DROP TABLE push_subscriptions;
