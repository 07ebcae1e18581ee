ALTER TABLE deliveries ADD COLUMN payload TEXT NOT NULL DEFAULT '';
UPDATE deliveries SET payload = (SELECT p.payload FROM delivery_payloads p WHERE p.id = deliveries.id);
DROP TABLE delivery_payloads;
