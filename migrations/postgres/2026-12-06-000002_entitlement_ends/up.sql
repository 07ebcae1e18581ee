-- A known end of a granting row (epoch ms): Stripe's cancel_at, or a
-- trial's end with no payment method on file. No access from then on,
-- whatever the status says (the event that changes it may be late or lost).
-- NULL: none known (and every row an older version writes).
ALTER TABLE entitlements ADD COLUMN ends_at BIGINT;
DROP VIEW entitlements_now;
CREATE VIEW entitlements_now AS
SELECT e.customer_id, cs.client_reference_id, e.subscription_id, e.product_id, e.price_id,
       e.status, e.access_until, e.account, e.livemode
FROM entitlements e
LEFT JOIN (SELECT DISTINCT customer_id, client_reference_id FROM checkout_sessions
           WHERE client_reference_id IS NOT NULL) cs ON cs.customer_id = e.customer_id
WHERE e.grants
  AND (e.ends_at IS NULL OR e.ends_at > (extract(epoch FROM now()) * 1000)::bigint)
  AND (e.status IN ('active', 'trialing')
       OR (e.access_until IS NOT NULL AND e.access_until > (extract(epoch FROM now()) * 1000)::bigint));
