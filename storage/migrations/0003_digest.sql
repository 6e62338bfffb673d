-- The owners' weekly digest and exports: what was sent to whom, and the indexes that
-- keep a week's report (and an export of a date range) a range scan over that period
-- only, whatever the size of the history.

-- One row per owner chat and ISO week (shop time zone, "2026-W47"), written in the same
-- transaction as the digest's outbox rows: a rerun or a restart never sends it twice.
CREATE TABLE digests_sent (
    id INTEGER PRIMARY KEY,
    owner_chat_id TEXT NOT NULL,
    week TEXT NOT NULL,
    language TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    UNIQUE (owner_chat_id, week)
);

-- Covering: a week's (or the chart's 12 weeks') answers are read from the index alone.
CREATE INDEX surveys_answered ON surveys (answered_at, score, touchpoint, store, customer_id);
-- Covering: a customer's tier (spend and orders over 12 months) without reading purchases.
CREATE INDEX purchases_spend ON purchases (customer_id, purchased_at, amount);
CREATE INDEX surveys_created ON surveys (created_at);          -- exports
CREATE INDEX tickets_created ON tickets (created_at);
CREATE INDEX tickets_resolved ON tickets (resolved_at);
CREATE INDEX tickets_first_response ON tickets (first_response_at);
CREATE INDEX ticket_events_action ON ticket_events (action, at);
CREATE INDEX inbox_received ON inbox (received_at);            -- exports
CREATE INDEX outbox_created ON outbox (created_at);            -- exports

-- purchases_spend covers every query purchases_customer served.
DROP INDEX purchases_customer;
