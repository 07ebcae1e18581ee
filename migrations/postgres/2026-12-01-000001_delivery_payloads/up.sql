-- The body of each delivery moves to a table of its own. A delivery's row
-- is rewritten by every claim and every recorded attempt; with the ~2 KB
-- body inside it, each of those rewrote a whole page per delivery (one row
-- fits a page), and the intake's next fsync had to flush them all. Without
-- it a page holds a dozen deliveries in id order, so a claim or a finish of
-- a batch dirties one or two pages (docs/performance.md, "Bodies out of the
-- deliveries rows"). The body is written once, with the delivery, and only
-- read after that.
--
-- An instance of an older version still running against this database
-- (a rolling deploy on Postgres) cannot record or claim deliveries any more:
-- its writes fail and are retried (Stripe retries the intake's 5xx), none is
-- sent without its body. Upgrade every instance.
CREATE TABLE delivery_payloads (
    id               BIGINT  PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    -- The original body, byte for byte (kept here: the outbox prunes).
    payload          TEXT    NOT NULL
);
INSERT INTO delivery_payloads (id, payload) SELECT id, payload FROM deliveries;
ALTER TABLE deliveries DROP COLUMN payload;
