-- Pruning finished deliveries (runner.retention_days): a delivered one goes
-- once its delivered_at is past the horizon, a discarded one once the
-- moment it was discarded is. That moment was not kept before: rows
-- discarded already take the end of their last attempt (or when they were
-- queued, if never attempted).
ALTER TABLE deliveries ADD COLUMN discarded_at BIGINT;
UPDATE deliveries
   SET discarded_at = COALESCE(
           (SELECT MAX(a.started_at + a.duration_ms)
              FROM delivery_attempts a
             WHERE a.delivery_id = deliveries.delivery_id),
           created_at)
 WHERE status = 'discarded';
-- The pruning scans: finished before the horizon, oldest first.
CREATE INDEX deliveries_delivered_at ON deliveries (delivered_at);
CREATE INDEX deliveries_discarded_at ON deliveries (discarded_at);
