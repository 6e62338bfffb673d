-- feedbot initial schema. Times are UTC ISO-8601 text (see storage/timefmt.py).

-- Generated secrets and other values the bot keeps across restarts.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- A shop's customer, as the shop's system knows them.
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    external_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    phone TEXT,
    telegram_user_id TEXT,
    link_token TEXT NOT NULL UNIQUE,      -- the deep-link payload that links a chat to this customer
    opted_out_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX customers_telegram_user ON customers (telegram_user_id);

-- A chat identity on one channel (a Telegram user, later a Zalo user, a web visitor).
CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    platform_user_id TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    customer_id INTEGER REFERENCES customers (id),
    display_name TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL,
    opted_out_at TEXT,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    UNIQUE (channel, platform_user_id)
);
CREATE INDEX contacts_customer ON contacts (customer_id, last_seen_at);

CREATE TABLE purchases (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    amount NUMERIC NOT NULL,
    currency TEXT NOT NULL,
    items TEXT NOT NULL,                  -- JSON array as posted
    store TEXT,
    touchpoint TEXT NOT NULL,
    purchased_at TEXT NOT NULL,
    fingerprint TEXT NOT NULL,            -- hash of the normalised request, to tell a retry from a conflict
    created_at TEXT NOT NULL
);
CREATE INDEX purchases_customer ON purchases (customer_id, purchased_at);

-- status: scheduled -> (awaiting_contact) -> sent -> answered | expired; or skipped (skip_reason)
CREATE TABLE surveys (
    id INTEGER PRIMARY KEY,
    purchase_id INTEGER NOT NULL UNIQUE REFERENCES purchases (id),
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    kind TEXT NOT NULL DEFAULT 'csat',
    touchpoint TEXT NOT NULL,
    store TEXT,
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'awaiting_contact', 'sent', 'answered', 'expired', 'skipped')),
    skip_reason TEXT,
    due_at TEXT NOT NULL,
    contact_id INTEGER REFERENCES contacts (id),
    language TEXT,
    sent_at TEXT,
    reminded_at TEXT,
    answered_at TEXT,
    score INTEGER CHECK (score BETWEEN 1 AND 5),
    comment TEXT,
    commented_at TEXT,
    closed_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX surveys_status_due ON surveys (status, due_at);
CREATE INDEX surveys_customer_sent ON surveys (customer_id, sent_at);
CREATE INDEX surveys_status_sent ON surveys (status, sent_at);

-- Where each contact is in its conversation (the flows' state machine).
CREATE TABLE conversations (
    contact_id INTEGER PRIMARY KEY REFERENCES contacts (id),
    state TEXT NOT NULL,
    data TEXT NOT NULL,                   -- JSON object
    updated_at TEXT NOT NULL
);

-- Every inbound platform update, recorded before it is acknowledged; the unique key
-- makes a redelivered update a no-op.
CREATE TABLE inbox (
    id INTEGER PRIMARY KEY,
    platform TEXT NOT NULL,
    update_id TEXT NOT NULL,
    payload TEXT NOT NULL,                -- raw JSON as received
    received_at TEXT NOT NULL,
    processed_at TEXT,
    error TEXT,
    contact_id INTEGER REFERENCES contacts (id),
    kind TEXT,                            -- text | command | choice, once processed
    text TEXT,                            -- what the customer said or chose, normalised
    UNIQUE (platform, update_id)
);
CREATE INDEX inbox_unprocessed ON inbox (processed_at, id);
CREATE INDEX inbox_contact ON inbox (contact_id, id);

-- Every outgoing message, written in the same transaction as the state change that
-- caused it and drained by the sender.
-- status: pending -> sending -> sent | failed (dead letter) | unknown (may or may not have arrived)
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    contact_id INTEGER REFERENCES contacts (id),
    method TEXT NOT NULL,                 -- send_text | answer_choice | edit_text
    payload TEXT NOT NULL,                -- JSON
    survey_id INTEGER REFERENCES surveys (id),
    priority INTEGER NOT NULL DEFAULT 0,  -- -1: button answers; 0: replies to a customer chatting now; 1: bulk (scheduled surveys)
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'unknown')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,                 -- NULL: as soon as the rate limits allow
    last_error TEXT,
    platform_message_id TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX outbox_ready ON outbox (status, priority, id);
CREATE INDEX outbox_contact ON outbox (contact_id, id);
