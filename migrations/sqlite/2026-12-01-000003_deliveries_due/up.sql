-- Nothing reads deliveries by (status, next_attempt_at) any more: claims
-- walk deliveries_claim (destination, status, id), health and retention
-- have indexes of their own. Every transaction that records or moves a
-- delivery (the intake's, the runner's finishes, the forwarder's claims
-- and finishes) still rewrote a page of this index for nothing.
DROP INDEX deliveries_due;
