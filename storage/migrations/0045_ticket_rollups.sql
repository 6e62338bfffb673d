-- Complaint rollups (issue 20): the dashboard's complaint figures per shop day x store x category x
-- kind, kept in the transaction of every ticket change (storage/ticket_rollups.py), rebuilt from
-- the tickets by `feedbot rollups rebuild` (and at start, once, for a database from before them).
-- An id column as in csat_rollups: `db copy` copies a table by a single-column key; the UNIQUE key
-- (day first) is what upserts and day ranges use.
CREATE TABLE ticket_rollups (
    id INTEGER PRIMARY KEY,
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
    UNIQUE (day, store, category, kind)
);
-- First-response and resolution times of the tickets opened on a day, counted in fixed buckets
-- (storage/ticket_rollups.py EDGES): the median and p90 to a bucket's precision. Not by category
-- (the page shows times for all categories).
CREATE TABLE ticket_durations (
    id INTEGER PRIMARY KEY,
    day TEXT NOT NULL,
    store TEXT NOT NULL,
    kind TEXT NOT NULL,
    measure TEXT NOT NULL,           -- first_response | resolution
    -- tickets whose time fell in bucket i (storage/ticket_rollups.py EDGES): one row per day and
    -- measure, so a two-year range adds up 730 rows per store, not one per bucket
    b0 INTEGER NOT NULL DEFAULT 0,
    b1 INTEGER NOT NULL DEFAULT 0,
    b2 INTEGER NOT NULL DEFAULT 0,
    b3 INTEGER NOT NULL DEFAULT 0,
    b4 INTEGER NOT NULL DEFAULT 0,
    b5 INTEGER NOT NULL DEFAULT 0,
    b6 INTEGER NOT NULL DEFAULT 0,
    b7 INTEGER NOT NULL DEFAULT 0,
    b8 INTEGER NOT NULL DEFAULT 0,
    b9 INTEGER NOT NULL DEFAULT 0,
    b10 INTEGER NOT NULL DEFAULT 0,
    b11 INTEGER NOT NULL DEFAULT 0,
    b12 INTEGER NOT NULL DEFAULT 0,
    b13 INTEGER NOT NULL DEFAULT 0,
    b14 INTEGER NOT NULL DEFAULT 0,
    b15 INTEGER NOT NULL DEFAULT 0,
    b16 INTEGER NOT NULL DEFAULT 0,
    b17 INTEGER NOT NULL DEFAULT 0,
    b18 INTEGER NOT NULL DEFAULT 0,
    b19 INTEGER NOT NULL DEFAULT 0,
    b20 INTEGER NOT NULL DEFAULT 0,
    b21 INTEGER NOT NULL DEFAULT 0,
    b22 INTEGER NOT NULL DEFAULT 0,
    b23 INTEGER NOT NULL DEFAULT 0,
    UNIQUE (day, store, kind, measure)
);
-- Customers' ratings of a resolution, on the day it was resolved, by the agent it was assigned to.
CREATE TABLE rating_rollups (
    id INTEGER PRIMARY KEY,
    day TEXT NOT NULL,
    store TEXT NOT NULL,
    kind TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    agent_name TEXT NOT NULL,
    ratings INTEGER NOT NULL,
    satisfied INTEGER NOT NULL,      -- 4-5
    dissatisfied INTEGER NOT NULL,   -- 1-2
    score_sum INTEGER NOT NULL,
    UNIQUE (day, store, kind, agent_id, agent_name)
);
-- "Oldest open" reads the first rows of this.
CREATE INDEX tickets_unresolved ON tickets (created_at) WHERE resolved_at IS NULL;
