-- Complaint rollups (issue 20): the dashboard's complaint figures per shop day x store x category x
-- kind, kept in the transaction of every ticket change (storage/ticket_rollups.py), rebuilt from
-- the tickets by `feedbot rollups rebuild` (and at start, once, for a database from before them).
CREATE TABLE ticket_rollups (
    day TEXT NOT NULL,               -- YYYY-MM-DD in shop time
    store TEXT NOT NULL,             -- the ticket's order's store, '' for none
    category TEXT NOT NULL,
    kind TEXT NOT NULL,              -- complaint | question
    opened INTEGER NOT NULL,         -- opened on this day
    resolved INTEGER NOT NULL,       -- resolved (now) on this day, whenever opened
    reopened INTEGER NOT NULL,       -- opened on this day, reopened at least once
    responded INTEGER NOT NULL,      -- opened on this day, with a first response
    closed INTEGER NOT NULL,         -- opened on this day, resolved now
    sla_met INTEGER NOT NULL,        -- of those closed: first response and resolution within their targets
    PRIMARY KEY (day, store, category, kind)
) WITHOUT ROWID;
-- First-response and resolution times of the tickets opened on a day, counted in fixed buckets
-- (storage/ticket_rollups.py EDGES): the median and p90 to a bucket's precision. Not by category
-- (the page shows times for all categories): a fifth of the rows a two-year range reads.
CREATE TABLE ticket_durations (
    day TEXT NOT NULL,
    store TEXT NOT NULL,
    kind TEXT NOT NULL,
    measure TEXT NOT NULL,           -- first_response | resolution
    bucket INTEGER NOT NULL,
    tickets INTEGER NOT NULL,
    PRIMARY KEY (day, store, kind, measure, bucket)
) WITHOUT ROWID;
-- Customers' ratings of a resolution, on the day it was resolved, by the agent it was assigned to.
CREATE TABLE rating_rollups (
    day TEXT NOT NULL,
    store TEXT NOT NULL,
    kind TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    agent_name TEXT NOT NULL,
    ratings INTEGER NOT NULL,
    satisfied INTEGER NOT NULL,      -- 4-5
    dissatisfied INTEGER NOT NULL,   -- 1-2
    score_sum INTEGER NOT NULL,
    PRIMARY KEY (day, store, kind, agent_id, agent_name)
) WITHOUT ROWID;
-- "Oldest open" reads the first rows of this.
CREATE INDEX tickets_unresolved ON tickets (created_at) WHERE resolved_at IS NULL;
