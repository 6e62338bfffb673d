-- PostgreSQL twin of ../0016_cluster.sql: outbox claims with a lease, and the leases table.
-- Lease times come from the server's clock (feedbot_clock below), so instances on machines
-- whose clocks disagree still agree on who holds what; stored as storage/timefmt's text like
-- every other time (`db copy` and the reports read them the same way on both backends).
ALTER TABLE outbox ADD COLUMN claimed_by TEXT COLLATE "C";
ALTER TABLE outbox ADD COLUMN lease_until TEXT COLLATE "C";
CREATE INDEX outbox_claims ON outbox (lease_until) WHERE status = 'sending';

CREATE TABLE leases (
    name TEXT COLLATE "C" PRIMARY KEY,
    holder TEXT COLLATE "C" NOT NULL,
    until TEXT COLLATE "C" NOT NULL,
    since TEXT COLLATE "C" NOT NULL
);

-- The server's time plus `seconds`, as storage/timefmt writes times (UTC, microseconds, Z).
CREATE FUNCTION feedbot_clock(seconds DOUBLE PRECISION) RETURNS TEXT
    LANGUAGE sql VOLATILE
    AS $$ SELECT to_char((clock_timestamp() + make_interval(secs => seconds)) AT TIME ZONE 'UTC',
                         'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;
