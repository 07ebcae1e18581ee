-- Charges (`ch_`, and `py_` for some payment methods), from `charge.*`
-- events and the charge of a `charge.dispute.*` event: the amounts, the
-- refunds and the link to a dispute. Guarded by `fetch_seq` like the other
-- records; `dispute_id` is the link written from either side (a dispute's
-- `charge`, or a dispute already stored when the charge arrives), so it does
-- not depend on which object is fetched first.
CREATE TABLE charges (
    id                TEXT    NOT NULL PRIMARY KEY,
    customer_id       TEXT,
    payment_intent_id TEXT,
    status            TEXT,
    livemode          BOOLEAN NOT NULL,
    amount            BIGINT,
    amount_captured   BIGINT,
    amount_refunded   BIGINT,
    currency          TEXT,
    captured          BOOLEAN NOT NULL DEFAULT FALSE,
    paid              BOOLEAN NOT NULL DEFAULT FALSE,
    refunded          BOOLEAN NOT NULL DEFAULT FALSE,
    disputed          BOOLEAN NOT NULL DEFAULT FALSE,
    dispute_id        TEXT,
    failure_code      TEXT,
    failure_message   TEXT,
    metadata          TEXT    NOT NULL DEFAULT '{}',
    raw               TEXT    NOT NULL,
    gone              BOOLEAN NOT NULL DEFAULT FALSE,
    fetched_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    fetch_seq         BIGINT  NOT NULL DEFAULT 0,
    account           TEXT
);
CREATE INDEX charges_customer ON charges (customer_id);
CREATE INDEX charges_payment_intent ON charges (payment_intent_id);
CREATE INDEX disputes_charge ON disputes (charge_id);
