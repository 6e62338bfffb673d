-- Several instances on one database (issue 22, phase 2; on SQLite one instance runs, and
-- these only make the same code run on both backends).
-- An outbox row being sent names its sender and how long its claim holds: a row whose claim
-- ran out (its instance died mid-send) is recovered like a crash's rows (outbox.recover_expired).
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN lease_until TEXT;  -- UTC, storage/timefmt's text
CREATE INDEX outbox_claims ON outbox (lease_until) WHERE status = 'sending';

-- Leases held by one instance at a time, renewed while it lives (name 'leader': the instance
-- that runs the periodic jobs, long polling and the sender).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until TEXT NOT NULL,  -- UTC, storage/timefmt's text
    since TEXT NOT NULL   -- when this holder took it
);
