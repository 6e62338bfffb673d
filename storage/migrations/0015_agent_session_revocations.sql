-- Agent page sign-outs (issue 19 item 8). A session cookie is signed and self-contained, so
-- signing out records the session's id here: the cookie is refused from then on, also after
-- a restart. A row can go once the session would have expired anyway.
CREATE TABLE agent_session_revocations (
    sid TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL  -- unix seconds, the session's own expiry
);
CREATE INDEX agent_session_revocations_expiry ON agent_session_revocations (expires_at);
