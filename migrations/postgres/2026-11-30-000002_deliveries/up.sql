-- One row per event × destination to forward it to, written in the
-- transaction of the step it follows (the event's finish, or the outbox
-- insert). The forwarder claims them with a lease, like the runner.
CREATE TABLE deliveries (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Stable per event × destination: what the app deduplicates on.
    delivery_id      TEXT    NOT NULL UNIQUE,
    destination      TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    -- Deliveries of one key go out in id order (ordered destinations):
    -- the Stripe object the event is about, or the event id.
    object_key       TEXT    NOT NULL,
    -- The original body, byte for byte (kept here: the outbox prunes).
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivering', 'delivered', 'dead', 'discarded')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    created_at       BIGINT  NOT NULL,
    delivered_at     BIGINT,
    -- The last answer: HTTP status (none for a network error), error text.
    last_status      INTEGER,
    last_error       TEXT,
    UNIQUE (event_id, destination)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_order ON deliveries (destination, object_key, id);
