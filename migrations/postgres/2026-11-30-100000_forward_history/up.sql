-- Forwarding, what it remembers beyond the deliveries themselves.

-- One row per attempt of a delivery (written in the transaction that
-- records the attempt's outcome): what was sent (headers, never the
-- signature) and what came back (status, first 2 KB of the body).
CREATE TABLE delivery_attempts (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      TEXT    NOT NULL,
    destination      TEXT    NOT NULL,
    attempt          INTEGER NOT NULL,
    started_at       BIGINT  NOT NULL,
    duration_ms      BIGINT  NOT NULL,
    -- delivered | retry | dead
    outcome          TEXT    NOT NULL,
    -- HTTP status; NULL for a network error or a time-out.
    http_status      INTEGER,
    error            TEXT,
    -- JSON object of the request headers sent (Stripe-Signature redacted,
    -- extra headers' values redacted).
    request_headers  TEXT    NOT NULL,
    -- The first 2 KB of the answer (lossy UTF-8).
    response_body    TEXT
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
CREATE INDEX delivery_attempts_destination ON delivery_attempts (destination, id);
CREATE INDEX delivery_attempts_outcome ON delivery_attempts (destination, outcome, id);

-- Destinations paused by a 410 Gone (or an operator): shared by every
-- instance, kept across restarts, cleared by a resume.
CREATE TABLE destination_pauses (
    destination      TEXT    NOT NULL PRIMARY KEY,
    paused_at        BIGINT  NOT NULL,
    reason           TEXT    NOT NULL
);

-- The last access (entitlements) of each customer that an
-- stripe_hookd.access.updated event was computed against.
CREATE TABLE access_snapshots (
    customer_id      TEXT    NOT NULL PRIMARY KEY,
    access           TEXT    NOT NULL,
    updated_at       BIGINT  NOT NULL
);

-- Claims: due deliveries of a destination in id order (stops at the limit).
CREATE INDEX deliveries_claim ON deliveries (destination, status, id);
