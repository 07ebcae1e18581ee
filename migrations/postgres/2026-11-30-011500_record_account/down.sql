DROP INDEX customers_account;
DROP INDEX subscriptions_account;
ALTER TABLE disputes DROP COLUMN account;
ALTER TABLE checkout_sessions DROP COLUMN account;
ALTER TABLE payment_intents DROP COLUMN account;
ALTER TABLE invoices DROP COLUMN account;
ALTER TABLE subscriptions DROP COLUMN account;
ALTER TABLE customers DROP COLUMN account;
