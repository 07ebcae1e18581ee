CREATE INDEX webhook_events_due ON webhook_events (status, next_attempt_at);
DROP INDEX webhook_events_due_priority;
ALTER TABLE webhook_events DROP COLUMN priority;
