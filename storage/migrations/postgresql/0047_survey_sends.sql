-- PostgreSQL twin of ../0047_survey_sends.sql: surveys sent per shop day x store x touchpoint.
CREATE TABLE survey_sends (
    day TEXT COLLATE "C" NOT NULL,
    store TEXT COLLATE "C" NOT NULL,
    touchpoint TEXT COLLATE "C" NOT NULL,
    sent BIGINT NOT NULL,
    PRIMARY KEY (day, store, touchpoint)
);
