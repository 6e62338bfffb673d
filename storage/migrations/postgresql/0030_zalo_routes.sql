-- PostgreSQL twin of ../0030_zalo_routes.sql.
-- Survey routes (issue 17): each survey records the route it took (cs | zns) and why, or
-- why it had none (skip_reason 'unreachable'); ZNS spend per shop day (quota, VND budget,
-- the owner told once); ratings read back from ZNS rating templates (stored once per
-- rating); the token keep-alive's last outcome; request_user_info sent once per follower.

ALTER TABLE surveys ADD COLUMN route TEXT COLLATE "C";
ALTER TABLE surveys ADD COLUMN route_reason TEXT COLLATE "C";
CREATE INDEX surveys_sent_route ON surveys (sent_at, route) WHERE sent_at IS NOT NULL;

CREATE TABLE zns_spend (
    day TEXT COLLATE "C" PRIMARY KEY,                 -- the shop's local date, YYYY-MM-DD
    messages INTEGER NOT NULL DEFAULT 0,  -- ZNS messages queued that day (reserved before sending)
    vnd INTEGER NOT NULL DEFAULT 0,
    alerted_at TEXT COLLATE "C"                       -- the owners were told the day's limit was reached
);

CREATE TABLE zns_ratings (
    rating_id TEXT COLLATE "C" PRIMARY KEY,           -- Zalo's msg id of the rated message
    survey_id BIGINT REFERENCES surveys (id),
    score INTEGER NOT NULL,
    received_at TEXT COLLATE "C" NOT NULL
);

CREATE TABLE zalo_health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    refreshed_at TEXT COLLATE "C",                    -- the last successful refresh
    failed_at TEXT COLLATE "C",                       -- the last failed one (NULL once one succeeds again)
    failure TEXT COLLATE "C",
    alerted_at TEXT COLLATE "C"                       -- the owners were told of this failure
);

ALTER TABLE contacts ADD COLUMN info_requested_at TEXT COLLATE "C";
