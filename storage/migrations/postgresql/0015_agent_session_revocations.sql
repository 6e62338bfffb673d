-- PostgreSQL twin of ../0015_agent_session_revocations.sql: agent page sign-outs (issue 19
-- item 8), kept until the session would have expired anyway.
CREATE TABLE agent_session_revocations (
    sid TEXT COLLATE "C" PRIMARY KEY,
    expires_at BIGINT NOT NULL  -- unix seconds, the session's own expiry
);
CREATE INDEX agent_session_revocations_expiry ON agent_session_revocations (expires_at);
