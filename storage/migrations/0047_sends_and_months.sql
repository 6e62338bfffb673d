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

-- CSAT rollups per shop month (YYYY-MM), kept from csat_rollups by triggers (an answer's upsert of
-- its day row moves its month row by the same amounts): a breakdown over two years adds up 24
-- months' rows, plus the days of the range's partial months, instead of 730 days' rows. A day
-- row's key never changes (only its counts).
CREATE TABLE csat_months (
    id INTEGER PRIMARY KEY,
    month TEXT NOT NULL,
    store TEXT NOT NULL,
    touchpoint TEXT NOT NULL,
    tier TEXT NOT NULL,
    channel TEXT NOT NULL,
    answers INTEGER NOT NULL,
    satisfied INTEGER NOT NULL,
    dissatisfied INTEGER NOT NULL,
    score_sum INTEGER NOT NULL,
    UNIQUE (month, store, touchpoint, tier, channel)
);
CREATE INDEX csat_months_cover ON csat_months (month, store, touchpoint, tier, channel, answers, satisfied, dissatisfied, score_sum);
CREATE TRIGGER csat_months_add AFTER INSERT ON csat_rollups
BEGIN
    INSERT INTO csat_months (month, store, touchpoint, tier, channel, answers, satisfied, dissatisfied, score_sum)
    VALUES (substr(NEW.day, 1, 7), NEW.store, NEW.touchpoint, NEW.tier, NEW.channel, NEW.answers, NEW.satisfied,
            NEW.dissatisfied, NEW.score_sum)
    ON CONFLICT (month, store, touchpoint, tier, channel) DO UPDATE SET answers = answers + excluded.answers,
        satisfied = satisfied + excluded.satisfied, dissatisfied = dissatisfied + excluded.dissatisfied,
        score_sum = score_sum + excluded.score_sum;
END;
CREATE TRIGGER csat_months_change AFTER UPDATE ON csat_rollups
BEGIN
    UPDATE csat_months SET answers = answers + NEW.answers - OLD.answers, satisfied = satisfied + NEW.satisfied - OLD.satisfied,
        dissatisfied = dissatisfied + NEW.dissatisfied - OLD.dissatisfied, score_sum = score_sum + NEW.score_sum - OLD.score_sum
    WHERE month = substr(NEW.day, 1, 7) AND store = NEW.store AND touchpoint = NEW.touchpoint AND tier = NEW.tier
        AND channel = NEW.channel;
END;
CREATE TRIGGER csat_months_remove AFTER DELETE ON csat_rollups
BEGIN
    UPDATE csat_months SET answers = answers - OLD.answers, satisfied = satisfied - OLD.satisfied,
        dissatisfied = dissatisfied - OLD.dissatisfied, score_sum = score_sum - OLD.score_sum
    WHERE month = substr(OLD.day, 1, 7) AND store = OLD.store AND touchpoint = OLD.touchpoint AND tier = OLD.tier
        AND channel = OLD.channel;
END;
INSERT INTO csat_months (month, store, touchpoint, tier, channel, answers, satisfied, dissatisfied, score_sum)
    SELECT substr(day, 1, 7), store, touchpoint, tier, channel, SUM(answers), SUM(satisfied), SUM(dissatisfied), SUM(score_sum)
    FROM csat_rollups GROUP BY substr(day, 1, 7), store, touchpoint, tier, channel;
