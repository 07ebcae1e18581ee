ALTER TABLE disputes          DROP COLUMN fetch_seq;
ALTER TABLE checkout_sessions DROP COLUMN fetch_seq;
ALTER TABLE payment_intents   DROP COLUMN fetch_seq;
ALTER TABLE invoices          DROP COLUMN fetch_seq;
ALTER TABLE subscriptions     DROP COLUMN fetch_seq;
ALTER TABLE customers         DROP COLUMN fetch_seq;
DROP TABLE fetch_sequence;
