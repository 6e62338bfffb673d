-- Incremental CSAT rollups (issue 20): answers per shop-local day x store x touchpoint x
-- customer tier x channel, added to in the same transaction as the answer (storage/rollups.py),
-- rebuilt from the surveys by `feedbot rollups rebuild`. The dashboard and the digest's chart
-- read these instead of scanning millions of surveys.
CREATE TABLE csat_rollups (
    id INTEGER PRIMARY KEY,
    day TEXT NOT NULL,              -- YYYY-MM-DD in shop time (shop.timezone)
    store TEXT NOT NULL,            -- '' for none
    touchpoint TEXT NOT NULL,
    tier TEXT NOT NULL,             -- regular | vip, at the time of the answer
    channel TEXT NOT NULL,          -- the chat that answered: telegram | zalo | web ('' unknown)
    answers INTEGER NOT NULL,
    satisfied INTEGER NOT NULL,     -- scores 4-5
    dissatisfied INTEGER NOT NULL,  -- scores 1-2
    score_sum INTEGER NOT NULL,
    UNIQUE (day, store, touchpoint, tier, channel)
);
CREATE INDEX csat_rollups_store_day ON csat_rollups (store, day);  -- a store's slice (managers) by day
-- Covering: a range of days is read from the index alone (the dashboard reads every row of a range).
CREATE INDEX csat_rollups_cover ON csat_rollups (day, store, touchpoint, tier, channel, answers, satisfied, dissatisfied, score_sum);
