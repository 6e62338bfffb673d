-- "Log in with Telegram" (issue 20): an account is linked to at most one Telegram user id and a
-- Telegram user id to at most one account (the column came with 0034_accounts.sql, unused
-- until now). NULL, not linked, may repeat.
CREATE UNIQUE INDEX accounts_telegram_user ON accounts (telegram_user_id);

-- The dashboard's CSAT by day (issue 20's speed): the whole shop's and each store's totals per shop
-- day, kept from csat_rollups by triggers like csat_months (0047). Two years by day with the
-- previous two years beside them read 1,460 rows (x the stores for a store's manager) instead of
-- 1,460 days x every store x touchpoint x tier x channel combination of the day.
CREATE TABLE csat_days (
    day TEXT PRIMARY KEY,
    answers INTEGER NOT NULL,
    satisfied INTEGER NOT NULL,
    dissatisfied INTEGER NOT NULL,
    score_sum INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE csat_store_days (
    store TEXT NOT NULL,
    day TEXT NOT NULL,
    answers INTEGER NOT NULL,
    satisfied INTEGER NOT NULL,
    dissatisfied INTEGER NOT NULL,
    score_sum INTEGER NOT NULL,
    PRIMARY KEY (store, day)
) WITHOUT ROWID;
CREATE TRIGGER csat_days_add AFTER INSERT ON csat_rollups
BEGIN
    INSERT INTO csat_days (day, answers, satisfied, dissatisfied, score_sum)
    VALUES (NEW.day, NEW.answers, NEW.satisfied, NEW.dissatisfied, NEW.score_sum)
    ON CONFLICT (day) DO UPDATE SET answers = answers + excluded.answers, satisfied = satisfied + excluded.satisfied,
        dissatisfied = dissatisfied + excluded.dissatisfied, score_sum = score_sum + excluded.score_sum;
    INSERT INTO csat_store_days (store, day, answers, satisfied, dissatisfied, score_sum)
    VALUES (NEW.store, NEW.day, NEW.answers, NEW.satisfied, NEW.dissatisfied, NEW.score_sum)
    ON CONFLICT (store, day) DO UPDATE SET answers = answers + excluded.answers, satisfied = satisfied + excluded.satisfied,
        dissatisfied = dissatisfied + excluded.dissatisfied, score_sum = score_sum + excluded.score_sum;
END;
CREATE TRIGGER csat_days_change AFTER UPDATE ON csat_rollups
BEGIN
    UPDATE csat_days SET answers = answers + NEW.answers - OLD.answers, satisfied = satisfied + NEW.satisfied - OLD.satisfied,
        dissatisfied = dissatisfied + NEW.dissatisfied - OLD.dissatisfied, score_sum = score_sum + NEW.score_sum - OLD.score_sum
    WHERE day = NEW.day;
    UPDATE csat_store_days SET answers = answers + NEW.answers - OLD.answers, satisfied = satisfied + NEW.satisfied - OLD.satisfied,
        dissatisfied = dissatisfied + NEW.dissatisfied - OLD.dissatisfied, score_sum = score_sum + NEW.score_sum - OLD.score_sum
    WHERE store = NEW.store AND day = NEW.day;
END;
CREATE TRIGGER csat_days_remove AFTER DELETE ON csat_rollups
BEGIN
    UPDATE csat_days SET answers = answers - OLD.answers, satisfied = satisfied - OLD.satisfied,
        dissatisfied = dissatisfied - OLD.dissatisfied, score_sum = score_sum - OLD.score_sum
    WHERE day = OLD.day;
    UPDATE csat_store_days SET answers = answers - OLD.answers, satisfied = satisfied - OLD.satisfied,
        dissatisfied = dissatisfied - OLD.dissatisfied, score_sum = score_sum - OLD.score_sum
    WHERE store = OLD.store AND day = OLD.day;
END;
INSERT INTO csat_days (day, answers, satisfied, dissatisfied, score_sum)
    SELECT day, SUM(answers), SUM(satisfied), SUM(dissatisfied), SUM(score_sum) FROM csat_rollups GROUP BY day;
INSERT INTO csat_store_days (store, day, answers, satisfied, dissatisfied, score_sum)
    SELECT store, day, SUM(answers), SUM(satisfied), SUM(dissatisfied), SUM(score_sum) FROM csat_rollups GROUP BY store, day;

-- Surveys sent per shop month x store x touchpoint, kept from survey_sends by triggers: the
-- response rate over two years (and the two years before) adds up whole months' rows and only the
-- partial months' days, instead of every day's rows through a sort.
CREATE TABLE survey_sends_months (
    month TEXT NOT NULL,
    store TEXT NOT NULL,
    touchpoint TEXT NOT NULL,
    sent INTEGER NOT NULL,
    PRIMARY KEY (month, store, touchpoint)
) WITHOUT ROWID;
CREATE TRIGGER survey_sends_months_add AFTER INSERT ON survey_sends
BEGIN
    INSERT INTO survey_sends_months (month, store, touchpoint, sent) VALUES (substr(NEW.day, 1, 7), NEW.store, NEW.touchpoint, NEW.sent)
    ON CONFLICT (month, store, touchpoint) DO UPDATE SET sent = sent + excluded.sent;
END;
CREATE TRIGGER survey_sends_months_change AFTER UPDATE ON survey_sends
BEGIN
    UPDATE survey_sends_months SET sent = sent + NEW.sent - OLD.sent
    WHERE month = substr(NEW.day, 1, 7) AND store = NEW.store AND touchpoint = NEW.touchpoint;
END;
CREATE TRIGGER survey_sends_months_remove AFTER DELETE ON survey_sends
BEGIN
    UPDATE survey_sends_months SET sent = sent - OLD.sent
    WHERE month = substr(OLD.day, 1, 7) AND store = OLD.store AND touchpoint = OLD.touchpoint;
END;
INSERT INTO survey_sends_months (month, store, touchpoint, sent)
    SELECT substr(day, 1, 7), store, touchpoint, SUM(sent) FROM survey_sends GROUP BY substr(day, 1, 7), store, touchpoint;
