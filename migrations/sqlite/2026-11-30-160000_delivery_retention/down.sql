DROP INDEX deliveries_discarded_at;
DROP INDEX deliveries_delivered_at;
ALTER TABLE deliveries DROP COLUMN discarded_at;
