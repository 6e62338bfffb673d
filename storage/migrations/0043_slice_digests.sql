-- The weekly digests of issue 21 beyond the owners' CSAT digest: the owners' feedback page,
-- each department's slice, each store manager's store. One row per recipient, slice and
-- week, written with the digest's outbox row: a restart never sends one twice.
CREATE TABLE slice_digests_sent (
    id INTEGER PRIMARY KEY,
    recipient TEXT NOT NULL,
    slice TEXT NOT NULL,          -- owner | department:<name> | store:<store>
    week TEXT NOT NULL,
    language TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    UNIQUE (recipient, slice, week)
);
-- Complaints of a week per purchase (journey stage, store) and per category (a department's slice).
CREATE INDEX tickets_created_category ON tickets (created_at, category);
