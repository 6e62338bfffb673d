-- Surveys sent per shop day x store x touchpoint (issue 20: the dashboard's response rate, answers
-- / surveys sent), kept in the transaction that marks a survey sent (or takes a send back: a
-- question that never arrived), rebuilt with the CSAT rollups (storage/rollups.py). Demo surveys
-- are not counted.
CREATE TABLE survey_sends (
    id INTEGER PRIMARY KEY,
    day TEXT NOT NULL,          -- the day it was sent, shop time
    store TEXT NOT NULL,        -- '' for none
    touchpoint TEXT NOT NULL,
    sent INTEGER NOT NULL,
    UNIQUE (day, store, touchpoint)
);
