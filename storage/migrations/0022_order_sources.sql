-- Order webhooks of sales systems (issue 18): the sources added by `feedbot source add`
-- (those in [[sources]] of the config file are not stored), each delivery recorded before
-- it is answered, the order events acted on (dedupe per order and kind), and each source's
-- refused requests (counted, never stored).
CREATE TABLE order_sources (
    name TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    settings TEXT NOT NULL,  -- JSON: secret, delivered_on, the platform's own keys
    created_at TEXT NOT NULL
);

-- status: pending -> done | ignored | failed. The body is kept only until it is handled
-- (then NULL: it carries names and phone numbers); a failed one until the retention purge.
CREATE TABLE order_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    topic TEXT,
    body TEXT,
    signature TEXT,  -- which signature form matched (KiotViet's encoding is unresolved)
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'ignored', 'failed')),
    outcome TEXT,
    received_at TEXT NOT NULL,
    processed_at TEXT,
    UNIQUE (source, delivery_id)
);
CREATE INDEX order_deliveries_pending ON order_deliveries (status, id);
CREATE INDEX order_deliveries_source ON order_deliveries (source, received_at);

-- kind: purchase | cancel. One row per order and kind: the same order re-sent with another
-- status change (or the same one again) does nothing more.
CREATE TABLE order_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('purchase', 'cancel')),
    purchase_order_id TEXT NOT NULL,
    delivery_id INTEGER,
    created_at TEXT NOT NULL,
    UNIQUE (source, order_id, kind)
);

-- Refused requests per source (bad signature, bad body): counted, the owner told once.
CREATE TABLE order_source_health (
    source TEXT PRIMARY KEY,
    rejected INTEGER NOT NULL DEFAULT 0,
    last_rejected_at TEXT,
    last_reason TEXT,
    alerted_at TEXT
);
