-- The order of fetches from Stripe, taken from the database when a fetch
-- starts: a newer fetch has a larger number whichever instance made it and
-- whatever its clock says. Local records keep the number of the fetch they
-- hold (`fetch_seq`), and a write with a smaller one is dropped.
-- (`fetched_at` stays: when, by the fetching machine's clock; informational.)
-- Postgres uses a SEQUENCE; SQLite, one counter row.
CREATE TABLE fetch_sequence (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT  NOT NULL
);
INSERT INTO fetch_sequence (id, value) VALUES (1, 0);

-- 0: written before this migration; any new fetch is newer.
ALTER TABLE customers         ADD COLUMN fetch_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE subscriptions     ADD COLUMN fetch_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE invoices          ADD COLUMN fetch_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payment_intents   ADD COLUMN fetch_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE checkout_sessions ADD COLUMN fetch_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE disputes          ADD COLUMN fetch_seq BIGINT NOT NULL DEFAULT 0;
