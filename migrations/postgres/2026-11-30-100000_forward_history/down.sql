DROP INDEX deliveries_claim;
DROP TABLE access_snapshots;
DROP TABLE destination_pauses;
DROP TABLE delivery_attempts;
