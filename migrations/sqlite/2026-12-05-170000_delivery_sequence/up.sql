-- A delivery recorded after the reconcile (`after = "reconciled"`) keeps
-- the place in the order of fetches (`fetch_seq`) of its object's record
-- as the finish that recorded it left it; forwarded as the
-- Stripe-Hookd-Sequence header. NULL: no such number (a `received`
-- delivery, stripe-hookd's own events, an event type not reconciled).
ALTER TABLE deliveries ADD COLUMN sequence BIGINT;
