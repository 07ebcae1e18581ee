-- Access rows carry the mode (test or live) of their subscription, written
-- with them; NULL: written by an older version, until the subscription is
-- written again (backfilled here from the stored subscription). The view
-- shows it (last column, so that readers selecting columns by name are
-- unaffected).
ALTER TABLE entitlements ADD COLUMN livemode BOOLEAN;
UPDATE entitlements SET livemode = (SELECT s.livemode FROM subscriptions s WHERE s.id = entitlements.subscription_id);
DROP VIEW entitlements_now;
CREATE VIEW entitlements_now AS
SELECT e.customer_id, cs.client_reference_id, e.subscription_id, e.product_id, e.price_id,
       e.status, e.access_until, e.account, e.livemode
FROM entitlements e
LEFT JOIN (SELECT DISTINCT customer_id, client_reference_id FROM checkout_sessions
           WHERE client_reference_id IS NOT NULL) cs ON cs.customer_id = e.customer_id
WHERE e.grants
  AND (e.status IN ('active', 'trialing')
       OR (e.access_until IS NOT NULL AND e.access_until > CAST(strftime('%s', 'now') AS INTEGER) * 1000));
