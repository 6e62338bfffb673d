-- Outgoing webhooks (Standard Webhooks v1, issue 18): the shop's endpoints, the events
-- written for them in the transaction that caused each, and one delivery per endpoint and
-- event, drained by bot/webhooks/worker.py. Not the chat outbox: its own retries, its own
-- dead letters.

-- An endpoint the shop subscribed (`feedbot webhooks add`). `events`: ",type,type," (matched
-- with instr). `previous_secret` stays valid (signed with too) until `previous_until`.
CREATE TABLE webhook_endpoints (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    events TEXT NOT NULL,
    secret TEXT NOT NULL,                 -- whsec_<base64>
    previous_secret TEXT,
    previous_until TEXT,
    redirect_ok INTEGER NOT NULL DEFAULT 0, -- 1: a 3xx answer counts as received (Apps Script answers a POST with 302)
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- One event: `msg_id` is its webhook-id on every attempt and every endpoint; `payload` the
-- exact body sent. Whose personal data it carries (for erasure): customer, contact, ticket.
CREATE TABLE webhook_messages (
    id INTEGER PRIMARY KEY,
    msg_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    customer_id INTEGER,
    contact_id INTEGER,
    ticket_id INTEGER,
    created_at TEXT NOT NULL
);
CREATE INDEX webhook_messages_customer ON webhook_messages (customer_id);
CREATE INDEX webhook_messages_contact ON webhook_messages (contact_id);
CREATE INDEX webhook_messages_ticket ON webhook_messages (ticket_id);
CREATE INDEX webhook_messages_created ON webhook_messages (created_at);

-- status: pending -> sending (leased until next_attempt_at) -> delivered | pending (retry) | dead.
-- A 'sending' row whose lease ran out (a crash mid-delivery) is claimed again, same webhook-id.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES webhook_messages (id),
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints (id),
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_status INTEGER,                  -- the receiver's last HTTP status, if it answered
    last_error TEXT,
    delivered_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_message ON webhook_deliveries (message_id);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, status);
