-- PostgreSQL twin of ../0045_ticket_rollups.sql: complaint rollups (issue 20).
CREATE TABLE ticket_rollups (
    day TEXT COLLATE "C" NOT NULL,
    store TEXT COLLATE "C" NOT NULL,
    category TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    opened BIGINT NOT NULL,
    resolved BIGINT NOT NULL,
    reopened BIGINT NOT NULL,
    responded BIGINT NOT NULL,
    closed BIGINT NOT NULL,
    sla_met BIGINT NOT NULL,
    PRIMARY KEY (day, store, category, kind)
);
CREATE TABLE ticket_durations (
    day TEXT COLLATE "C" NOT NULL,
    store TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    measure TEXT COLLATE "C" NOT NULL,
    bucket INTEGER NOT NULL,
    tickets BIGINT NOT NULL,
    PRIMARY KEY (day, store, kind, measure, bucket)
);
CREATE TABLE rating_rollups (
    day TEXT COLLATE "C" NOT NULL,
    store TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    agent_id TEXT COLLATE "C" NOT NULL,
    agent_name TEXT COLLATE "C" NOT NULL,
    ratings BIGINT NOT NULL,
    satisfied BIGINT NOT NULL,
    dissatisfied BIGINT NOT NULL,
    score_sum BIGINT NOT NULL,
    PRIMARY KEY (day, store, kind, agent_id, agent_name)
);
CREATE INDEX tickets_unresolved ON tickets (created_at) WHERE resolved_at IS NULL;
