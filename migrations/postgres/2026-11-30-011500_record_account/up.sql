-- The Connect account each record was fetched from (NULL: the platform
-- account). Every later fetch of the record (resync, the drift sweep) sends
-- it as `Stripe-Account`: without it Stripe answers 404 for a connected
-- account's object, which would read as "deleted".
ALTER TABLE customers ADD COLUMN account TEXT;
ALTER TABLE subscriptions ADD COLUMN account TEXT;
ALTER TABLE invoices ADD COLUMN account TEXT;
ALTER TABLE payment_intents ADD COLUMN account TEXT;
ALTER TABLE checkout_sessions ADD COLUMN account TEXT;
ALTER TABLE disputes ADD COLUMN account TEXT;
CREATE INDEX subscriptions_account ON subscriptions (account);
CREATE INDEX customers_account ON customers (account);
