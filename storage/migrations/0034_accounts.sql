-- Accounts with roles (issue 20): owners, store managers and agents sign in to the web with
-- their own login and password (argon2id), no longer with the shared API token and a typed
-- name. The API token stays for machines (the HTTP API).
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,           -- lower case, what one types to sign in
    name TEXT NOT NULL,                   -- shown to customers in replies and in the audit trail
    role TEXT NOT NULL CHECK (role IN ('owner', 'manager', 'agent')),
    password_hash TEXT,                   -- argon2id, PHC string; never the password
    telegram_user_id INTEGER,             -- "Log in with Telegram", when linked
    created_at TEXT NOT NULL,
    disabled_at TEXT,                     -- disabled accounts cannot sign in; their sessions end
    failed_logins INTEGER NOT NULL DEFAULT 0,  -- wrong passwords in a row
    locked_until TEXT                     -- per-account lockout after too many wrong passwords
);

-- A manager's stores (the store names posted with purchases); owners and agents have none.
CREATE TABLE account_stores (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    store TEXT NOT NULL,
    UNIQUE (account_id, store)
);

-- Server-side sessions: the cookie carries a random token, the table its SHA-256. Signing out,
-- disabling or removing the account ends them at once (every request reads this table).
CREATE TABLE account_sessions (
    token_hash TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX account_sessions_account ON account_sessions (account_id);
CREATE INDEX account_sessions_expiry ON account_sessions (expires_at);

-- What each account did that is not a ticket event (ticket actions are in ticket_events, with
-- actor_id 'account:<id>'): sign-ins, wrong passwords, lockouts, password changes, role changes.
-- account_id stays after the account is removed (the login is kept in `login`).
CREATE TABLE account_events (
    id INTEGER PRIMARY KEY,
    account_id INTEGER,
    login TEXT NOT NULL,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    by_login TEXT NOT NULL DEFAULT ''     -- who did it: a login, or 'cli'
);
CREATE INDEX account_events_login ON account_events (login, id);

-- The signed-cookie sessions of the shared-token sign-in are gone with it.
DROP TABLE agent_session_revocations;
