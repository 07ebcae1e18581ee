-- Stripe's Entitlements product: the features a customer is entitled to
-- now, as Stripe's active entitlements list them (re-fetched whole on
-- `entitlements.active_entitlement_summary.updated`). One row per
-- (customer, feature); the customer's rows are replaced together.
CREATE TABLE customer_features (
    customer_id    TEXT    NOT NULL,
    feature_id     TEXT    NOT NULL,
    lookup_key     TEXT    NOT NULL,
    entitlement_id TEXT    NOT NULL,
    livemode       BOOLEAN NOT NULL,
    account        TEXT,
    updated_at     BIGINT  NOT NULL,
    PRIMARY KEY (customer_id, feature_id)
);
CREATE INDEX customer_features_lookup_key ON customer_features (customer_id, lookup_key);

-- The fetch each customer's feature rows come from: the overwrite guard
-- (an older fetch never replaces the rows of a newer one).
CREATE TABLE customer_feature_fetches (
    customer_id TEXT   NOT NULL PRIMARY KEY,
    account     TEXT,
    features    BIGINT NOT NULL,
    fetched_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    fetch_seq   BIGINT NOT NULL
);
