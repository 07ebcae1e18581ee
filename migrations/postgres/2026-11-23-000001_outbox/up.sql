-- The outbox: every verified delivery, stored before it is answered 200.
-- Times are epoch milliseconds (BIGINT) so that one diesel schema serves
-- SQLite and Postgres alike.
CREATE TABLE webhook_events (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         TEXT    NOT NULL UNIQUE,
    endpoint         TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    api_version      TEXT,
    livemode         BOOLEAN NOT NULL,
    account          TEXT,
    object_type      TEXT,
    object_id        TEXT,
    -- What events are ordered by: the object's id, or the event's own id.
    object_key       TEXT    NOT NULL,
    stripe_created   BIGINT  NOT NULL,
    received_at      BIGINT  NOT NULL,
    -- When it was last queued (received, or replayed): the retry budget's age counts from here.
    queued_at        BIGINT  NOT NULL,
    payload          TEXT    NOT NULL,
    headers          TEXT    NOT NULL,
    secret_index     INTEGER NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'done', 'ignored', 'dead', 'discarded')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    last_error       TEXT,
    processed_at     BIGINT
);

CREATE INDEX webhook_events_due ON webhook_events (status, next_attempt_at);
CREATE INDEX webhook_events_object ON webhook_events (object_key, status);
CREATE INDEX webhook_events_type ON webhook_events (event_type);
CREATE INDEX webhook_events_received ON webhook_events (received_at);

-- One row per processing attempt: the history the inspector shows.
CREATE TABLE event_attempts (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    TEXT    NOT NULL REFERENCES webhook_events (event_id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    worker      TEXT    NOT NULL,
    started_at  BIGINT  NOT NULL,
    finished_at BIGINT,
    outcome     TEXT,
    error       TEXT
);

CREATE INDEX event_attempts_event ON event_attempts (event_id);

-- At most one worker per Stripe object at a time, across every instance:
-- a row here is a lease on the object; it expires with the events' lease.
CREATE TABLE object_leases (
    object_key TEXT   NOT NULL PRIMARY KEY,
    owner      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
