-- Only finished deliveries have these times. An entry for the NULL of every
-- delivery made each transaction that records deliveries (the intake's,
-- the runner's finishes) rewrite the last page of both indexes, for a scan
-- that only ever looks at finished ones (retention: `delivered_at < horizon`
-- implies NOT NULL, so both databases use the partial index).
DROP INDEX deliveries_delivered_at;
DROP INDEX deliveries_discarded_at;
CREATE INDEX deliveries_delivered_at ON deliveries (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX deliveries_discarded_at ON deliveries (discarded_at) WHERE discarded_at IS NOT NULL;
