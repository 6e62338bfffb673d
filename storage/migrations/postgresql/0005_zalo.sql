-- PostgreSQL twin of ../0005_zalo.sql: the same schema (ids BIGINT identities, text in
-- byte order like SQLite's: COLLATE "C").
-- Zalo Official Account channel: customers known by their Zalo user id, the OA's
-- rotating token pair, and the index the digest's "not delivered" count reads.

-- The shop may give a customer's Zalo user id (scoped to its OA) with a purchase.
ALTER TABLE customers ADD COLUMN zalo_user_id TEXT COLLATE "C";
CREATE INDEX customers_zalo_user ON customers (zalo_user_id);

-- The OA access token and its refresh token. The refresh token is single-use and rotates:
-- each refresh returns a new pair, stored here before it is used, so a restart resumes
-- with the newest pair (never the stale one from the config).
CREATE TABLE zalo_tokens (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    access_token TEXT COLLATE "C" NOT NULL,
    refresh_token TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C",                      -- NULL: unknown (the pair from the config)
    updated_at TEXT COLLATE "C" NOT NULL
);

-- Surveys whose question could not be delivered (status 'skipped', skip_reason
-- 'undeliverable:<reason>') are counted per week by closed_at.
CREATE INDEX surveys_closed ON surveys (status, closed_at);
