ALTER TABLE deliveries ADD COLUMN payload TEXT NOT NULL DEFAULT '';
UPDATE deliveries d SET payload = p.payload FROM delivery_payloads p WHERE p.id = d.id;
ALTER TABLE deliveries ALTER COLUMN payload DROP DEFAULT;
DROP TABLE delivery_payloads;
