-- PostgreSQL twin of ../0059_telegram_login_day_totals.sql: one account per Telegram user id (NULLs repeat).
CREATE UNIQUE INDEX accounts_telegram_user ON accounts (telegram_user_id);

-- CSAT totals per shop day, and per store and day, kept from csat_rollups (see the SQLite twin).
CREATE TABLE csat_days (
    day TEXT COLLATE "C" PRIMARY KEY,
    answers BIGINT NOT NULL,
    satisfied BIGINT NOT NULL,
    dissatisfied BIGINT NOT NULL,
    score_sum BIGINT NOT NULL
);
CREATE TABLE csat_store_days (
    store TEXT COLLATE "C" NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    answers BIGINT NOT NULL,
    satisfied BIGINT NOT NULL,
    dissatisfied BIGINT NOT NULL,
    score_sum BIGINT NOT NULL,
    PRIMARY KEY (store, day)
);
CREATE FUNCTION csat_days_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO csat_days (day, answers, satisfied, dissatisfied, score_sum)
        VALUES (NEW.day, NEW.answers, NEW.satisfied, NEW.dissatisfied, NEW.score_sum)
        ON CONFLICT (day) DO UPDATE SET answers = csat_days.answers + excluded.answers,
            satisfied = csat_days.satisfied + excluded.satisfied, dissatisfied = csat_days.dissatisfied + excluded.dissatisfied,
            score_sum = csat_days.score_sum + excluded.score_sum;
        INSERT INTO csat_store_days (store, day, answers, satisfied, dissatisfied, score_sum)
        VALUES (NEW.store, NEW.day, NEW.answers, NEW.satisfied, NEW.dissatisfied, NEW.score_sum)
        ON CONFLICT (store, day) DO UPDATE SET answers = csat_store_days.answers + excluded.answers,
            satisfied = csat_store_days.satisfied + excluded.satisfied,
            dissatisfied = csat_store_days.dissatisfied + excluded.dissatisfied,
            score_sum = csat_store_days.score_sum + excluded.score_sum;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE csat_days SET answers = answers + NEW.answers - OLD.answers, satisfied = satisfied + NEW.satisfied - OLD.satisfied,
            dissatisfied = dissatisfied + NEW.dissatisfied - OLD.dissatisfied, score_sum = score_sum + NEW.score_sum - OLD.score_sum
        WHERE day = NEW.day;
        UPDATE csat_store_days SET answers = answers + NEW.answers - OLD.answers,
            satisfied = satisfied + NEW.satisfied - OLD.satisfied, dissatisfied = dissatisfied + NEW.dissatisfied - OLD.dissatisfied,
            score_sum = score_sum + NEW.score_sum - OLD.score_sum
        WHERE store = NEW.store AND day = NEW.day;
    ELSE
        UPDATE csat_days SET answers = answers - OLD.answers, satisfied = satisfied - OLD.satisfied,
            dissatisfied = dissatisfied - OLD.dissatisfied, score_sum = score_sum - OLD.score_sum
        WHERE day = OLD.day;
        UPDATE csat_store_days SET answers = answers - OLD.answers, satisfied = satisfied - OLD.satisfied,
            dissatisfied = dissatisfied - OLD.dissatisfied, score_sum = score_sum - OLD.score_sum
        WHERE store = OLD.store AND day = OLD.day;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER csat_days_keep AFTER INSERT OR UPDATE OR DELETE ON csat_rollups
    FOR EACH ROW EXECUTE FUNCTION csat_days_keep();
INSERT INTO csat_days (day, answers, satisfied, dissatisfied, score_sum)
    SELECT day, SUM(answers), SUM(satisfied), SUM(dissatisfied), SUM(score_sum) FROM csat_rollups GROUP BY day;
INSERT INTO csat_store_days (store, day, answers, satisfied, dissatisfied, score_sum)
    SELECT store, day, SUM(answers), SUM(satisfied), SUM(dissatisfied), SUM(score_sum) FROM csat_rollups GROUP BY store, day;

-- Surveys sent per shop month x store x touchpoint, kept from survey_sends (see the SQLite twin).
CREATE TABLE survey_sends_months (
    month TEXT COLLATE "C" NOT NULL,
    store TEXT COLLATE "C" NOT NULL,
    touchpoint TEXT COLLATE "C" NOT NULL,
    sent BIGINT NOT NULL,
    PRIMARY KEY (month, store, touchpoint)
);
CREATE FUNCTION survey_sends_months_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO survey_sends_months (month, store, touchpoint, sent)
        VALUES (substr(NEW.day, 1, 7), NEW.store, NEW.touchpoint, NEW.sent)
        ON CONFLICT (month, store, touchpoint) DO UPDATE SET sent = survey_sends_months.sent + excluded.sent;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE survey_sends_months SET sent = sent + NEW.sent - OLD.sent
        WHERE month = substr(NEW.day, 1, 7) AND store = NEW.store AND touchpoint = NEW.touchpoint;
    ELSE
        UPDATE survey_sends_months SET sent = sent - OLD.sent
        WHERE month = substr(OLD.day, 1, 7) AND store = OLD.store AND touchpoint = OLD.touchpoint;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER survey_sends_months_keep AFTER INSERT OR UPDATE OR DELETE ON survey_sends
    FOR EACH ROW EXECUTE FUNCTION survey_sends_months_keep();
INSERT INTO survey_sends_months (month, store, touchpoint, sent)
    SELECT substr(day, 1, 7), store, touchpoint, SUM(sent) FROM survey_sends GROUP BY substr(day, 1, 7), store, touchpoint;
