-- The mode (test or live) of the daemon's API key, written at every start
-- (one row). Access is answered for that mode only: after the key goes from
-- test to live on the same database, the test subscriptions (which no live
-- event or sweep will ever touch again) grant nothing. A row of unknown
-- mode (livemode NULL, written before the column) is shown, as is every
-- row while no mode was written yet.
CREATE TABLE access_mode (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    livemode   BOOLEAN NOT NULL,
    updated_at BIGINT  NOT NULL
);
DROP VIEW entitlements_now;
CREATE VIEW entitlements_now AS
SELECT e.customer_id, cs.client_reference_id, e.subscription_id, e.product_id, e.price_id,
       e.status, e.access_until, e.account, e.livemode
FROM entitlements e
LEFT JOIN (SELECT DISTINCT customer_id, client_reference_id FROM checkout_sessions
           WHERE client_reference_id IS NOT NULL) cs ON cs.customer_id = e.customer_id
WHERE e.grants
  AND (e.livemode IS NULL OR e.livemode = COALESCE((SELECT m.livemode FROM access_mode m WHERE m.id = 1), e.livemode))
  AND (e.ends_at IS NULL OR e.ends_at > (extract(epoch FROM now()) * 1000)::bigint)
  AND (e.status IN ('active', 'trialing')
       OR (e.access_until IS NOT NULL AND e.access_until > (extract(epoch FROM now()) * 1000)::bigint));
