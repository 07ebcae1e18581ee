-- Live deliveries before background work: replays and catch-up re-queue
-- events with priority 1, the intake stores 0, and claims take due events
-- by (priority, next_attempt_at), so a bulk replay or a catch-up backlog
-- never holds back what Stripe sends now. A retry keeps its priority.
ALTER TABLE webhook_events ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
CREATE INDEX webhook_events_due_priority ON webhook_events (status, priority, next_attempt_at);
DROP INDEX webhook_events_due;
