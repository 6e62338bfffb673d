-- Feedback rollups (issue 21): what the feedback pages group by, per shop day (shop.timezone),
-- kept in the transaction that records each answer (storage/feedback_rollups.py), rebuilt with
-- the other rollups by `feedbot rollups rebuild`. The feedback digests (journey view, staff,
-- programs, stores) and the dashboard's programs page read these instead of the answers.
--
-- The purchase CSAT (surveys about a purchase) per day x the purchase's store x dimension x
-- name: one answer adds to its purchase's stage row and to its staff row ('' where the
-- purchase named none).
CREATE TABLE journey_rollups (
    id INTEGER PRIMARY KEY,
    day TEXT NOT NULL,          -- YYYY-MM-DD, shop time
    store TEXT NOT NULL,        -- the purchase's store, '' for none
    dimension TEXT NOT NULL,    -- stage | staff
    name TEXT NOT NULL,         -- the stage or the staff member, '' for none
    answers INTEGER NOT NULL,
    satisfied INTEGER NOT NULL, -- scores 4-5
    score_sum INTEGER NOT NULL,
    UNIQUE (day, store, dimension, name)
);
-- Covering: one dimension over a range of days, read from the index alone.
CREATE INDEX journey_rollups_cover ON journey_rollups (dimension, day, store, name, answers, satisfied, score_sum);
-- Program answers per day x store (the purchase's it follows, or that of the purchase the
-- complaint it follows was about; '' for none) x program x kind x score x choice.
CREATE TABLE program_rollups (
    id INTEGER PRIMARY KEY,
    day TEXT NOT NULL,
    store TEXT NOT NULL,
    program TEXT NOT NULL,
    kind TEXT NOT NULL,
    score INTEGER NOT NULL,     -- -1: none (a choice or a text)
    choice TEXT NOT NULL,       -- '': none
    answers INTEGER NOT NULL,
    UNIQUE (day, store, program, kind, score, choice)
);
CREATE INDEX program_rollups_cover ON program_rollups (day, store, program, kind, score, choice, answers);
