DROP INDEX deliveries_delivered_at;
DROP INDEX deliveries_discarded_at;
CREATE INDEX deliveries_delivered_at ON deliveries (delivered_at);
CREATE INDEX deliveries_discarded_at ON deliveries (discarded_at);
