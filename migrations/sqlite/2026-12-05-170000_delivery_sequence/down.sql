ALTER TABLE deliveries DROP COLUMN sequence;
