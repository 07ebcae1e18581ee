-- Local billing records, each re-fetched from the Stripe API. Every table
-- keeps the Stripe id, the fields applications read, the full JSON of the
-- last fetch (`raw`), when that fetch STARTED (`fetched_at`, epoch ms: an
-- older fetch never overwrites a newer one) and whether Stripe answered 404
-- (`gone`: deleted, or not visible to this key/account).
CREATE TABLE customers (
    id          TEXT    NOT NULL PRIMARY KEY,
    livemode    BOOLEAN NOT NULL,
    email       TEXT,
    name        TEXT,
    deleted     BOOLEAN NOT NULL DEFAULT FALSE,
    metadata    TEXT    NOT NULL DEFAULT '{}',
    raw         TEXT    NOT NULL,
    gone        BOOLEAN NOT NULL DEFAULT FALSE,
    fetched_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE subscriptions (
    id                   TEXT    NOT NULL PRIMARY KEY,
    customer_id          TEXT,
    status               TEXT    NOT NULL,
    livemode             BOOLEAN NOT NULL,
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
    cancel_at            BIGINT,
    canceled_at          BIGINT,
    ended_at             BIGINT,
    trial_start          BIGINT,
    trial_end            BIGINT,
    current_period_start BIGINT,
    current_period_end   BIGINT,
    latest_invoice_id    TEXT,
    -- When we first saw it past_due (epoch ms): the grace period counts from here.
    past_due_since       BIGINT,
    metadata             TEXT    NOT NULL DEFAULT '{}',
    raw                  TEXT    NOT NULL,
    gone                 BOOLEAN NOT NULL DEFAULT FALSE,
    fetched_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL
);
CREATE INDEX subscriptions_customer ON subscriptions (customer_id);

CREATE TABLE subscription_items (
    id                   TEXT   NOT NULL PRIMARY KEY,
    subscription_id      TEXT   NOT NULL,
    price_id             TEXT,
    product_id           TEXT,
    quantity             BIGINT,
    current_period_start BIGINT,
    current_period_end   BIGINT
);
CREATE INDEX subscription_items_subscription ON subscription_items (subscription_id);

CREATE TABLE invoices (
    id                 TEXT    NOT NULL PRIMARY KEY,
    customer_id        TEXT,
    subscription_id    TEXT,
    status             TEXT,
    livemode           BOOLEAN NOT NULL,
    currency           TEXT,
    amount_due         BIGINT,
    amount_paid        BIGINT,
    amount_remaining   BIGINT,
    billing_reason     TEXT,
    hosted_invoice_url TEXT,
    period_start       BIGINT,
    period_end         BIGINT,
    raw                TEXT    NOT NULL,
    gone               BOOLEAN NOT NULL DEFAULT FALSE,
    fetched_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);
CREATE INDEX invoices_subscription ON invoices (subscription_id);
CREATE INDEX invoices_customer ON invoices (customer_id);

CREATE TABLE payment_intents (
    id                 TEXT    NOT NULL PRIMARY KEY,
    customer_id        TEXT,
    status             TEXT,
    livemode           BOOLEAN NOT NULL,
    amount             BIGINT,
    amount_received    BIGINT,
    currency           TEXT,
    latest_charge_id   TEXT,
    last_payment_error TEXT,
    raw                TEXT    NOT NULL,
    gone               BOOLEAN NOT NULL DEFAULT FALSE,
    fetched_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);

CREATE TABLE checkout_sessions (
    id                  TEXT    NOT NULL PRIMARY KEY,
    client_reference_id TEXT,
    customer_id         TEXT,
    subscription_id     TEXT,
    payment_intent_id   TEXT,
    mode                TEXT,
    status              TEXT,
    payment_status      TEXT,
    livemode            BOOLEAN NOT NULL,
    amount_total        BIGINT,
    currency            TEXT,
    raw                 TEXT    NOT NULL,
    gone                BOOLEAN NOT NULL DEFAULT FALSE,
    fetched_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL
);
CREATE INDEX checkout_sessions_reference ON checkout_sessions (client_reference_id);
CREATE INDEX checkout_sessions_customer ON checkout_sessions (customer_id);

CREATE TABLE disputes (
    id                TEXT    NOT NULL PRIMARY KEY,
    charge_id         TEXT,
    payment_intent_id TEXT,
    status            TEXT,
    reason            TEXT,
    livemode          BOOLEAN NOT NULL,
    amount            BIGINT,
    currency          TEXT,
    raw               TEXT    NOT NULL,
    gone              BOOLEAN NOT NULL DEFAULT FALSE,
    fetched_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL
);

-- Who is entitled to what: one row per subscription item, rewritten in the
-- same transaction as its subscription. `grants` is the rule applied at
-- write time (active/trialing: yes; past_due: yes until `access_until`;
-- anything else: no). Applications read the view `entitlements_now`.
CREATE TABLE entitlements (
    subscription_id TEXT    NOT NULL,
    item_id         TEXT    NOT NULL,
    customer_id     TEXT,
    price_id        TEXT,
    product_id      TEXT,
    status          TEXT    NOT NULL,
    grants          BOOLEAN NOT NULL,
    -- Epoch ms: end of the past_due grace, or the paid-through period end
    -- for active/trialing (informational: access holds while the status does).
    access_until    BIGINT,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (subscription_id, item_id)
);
CREATE INDEX entitlements_customer ON entitlements (customer_id);

-- Access now, with the customer's client_reference_id(s) from Checkout.
CREATE VIEW entitlements_now AS
SELECT e.customer_id, cs.client_reference_id, e.subscription_id, e.product_id, e.price_id,
       e.status, e.access_until
FROM entitlements e
LEFT JOIN (SELECT DISTINCT customer_id, client_reference_id FROM checkout_sessions
           WHERE client_reference_id IS NOT NULL) cs ON cs.customer_id = e.customer_id
WHERE e.grants
  AND (e.status IN ('active', 'trialing')
       OR (e.access_until IS NOT NULL AND e.access_until > (extract(epoch FROM now()) * 1000)::bigint));
