DROP VIEW entitlements_now;
CREATE VIEW entitlements_now AS
SELECT e.customer_id, cs.client_reference_id, e.subscription_id, e.product_id, e.price_id,
       e.status, e.access_until, e.account
FROM entitlements e
LEFT JOIN (SELECT DISTINCT customer_id, client_reference_id FROM checkout_sessions
           WHERE client_reference_id IS NOT NULL) cs ON cs.customer_id = e.customer_id
WHERE e.grants
  AND (e.status IN ('active', 'trialing')
       OR (e.access_until IS NOT NULL AND e.access_until > (extract(epoch FROM now()) * 1000)::bigint));
ALTER TABLE entitlements DROP COLUMN livemode;
