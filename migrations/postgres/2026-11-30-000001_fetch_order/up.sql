-- The order of fetches from Stripe, taken from the database when a fetch
-- starts: a newer fetch has a larger number whichever instance made it and
-- whatever its clock says. Local records keep the number of the fetch they
-- hold (`fetch_seq`), and a write with a smaller one is dropped.
-- (`fetched_at` stays: when, by the fetching machine's clock; informational.)
-- Postgres uses a SEQUENCE (no lock, shared by every instance); CACHE 1 (the
-- default, stated because a per-session cache would break the order
-- between instances). SQLite uses one counter row.
CREATE SEQUENCE fetch_sequence AS BIGINT CACHE 1;

-- 0: written before this migration; any new fetch is newer.
ALTER TABLE customers         ADD COLUMN fetch_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE subscriptions     ADD COLUMN fetch_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE invoices          ADD COLUMN fetch_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payment_intents   ADD COLUMN fetch_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE checkout_sessions ADD COLUMN fetch_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE disputes          ADD COLUMN fetch_seq BIGINT NOT NULL DEFAULT 0;
