-- Complaints: tickets, their conversation and audit trail, and agent-side threading.

CREATE TABLE tickets (
    id INTEGER PRIMARY KEY,                -- shown as KN-0042
    contact_id INTEGER NOT NULL REFERENCES contacts (id),
    customer_id INTEGER REFERENCES customers (id),
    purchase_id INTEGER REFERENCES purchases (id),
    survey_id INTEGER REFERENCES surveys (id),
    source TEXT NOT NULL,                  -- low_score | command | keywords
    category TEXT NOT NULL,
    description TEXT NOT NULL,
    photos TEXT NOT NULL DEFAULT '[]',     -- JSON list of platform file ids (not downloaded)
    tier TEXT NOT NULL,                    -- regular | vip, when opened
    priority TEXT NOT NULL,                -- normal | high | urgent
    status TEXT NOT NULL CHECK (status IN ('open', 'claimed', 'resolved')),
    assignee_id TEXT,
    assignee_name TEXT,
    created_at TEXT NOT NULL,
    claimed_at TEXT,
    first_response_at TEXT,
    resolved_at TEXT,
    first_response_due_at TEXT NOT NULL,
    resolution_due_at TEXT NOT NULL,
    first_response_breached_at TEXT,       -- set once: one re-escalation per breach
    resolution_breached_at TEXT,
    reopened_count INTEGER NOT NULL DEFAULT 0,
    resolution_score INTEGER CHECK (resolution_score BETWEEN 1 AND 5),
    agents_chat_id TEXT,                   -- where the agents' side lives
    thread_id TEXT,                        -- forum topic, when the group is a forum
    card_message_id TEXT
);
CREATE INDEX tickets_contact ON tickets (contact_id, status);
CREATE INDEX tickets_status ON tickets (status, created_at);
CREATE INDEX tickets_thread ON tickets (agents_chat_id, thread_id);

-- Everything that happens on a ticket: messages both ways, notes, and every agent
-- action (also the refused ones): the conversation and the audit trail.
CREATE TABLE ticket_events (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER REFERENCES tickets (id),
    at TEXT NOT NULL,
    actor TEXT NOT NULL,                   -- customer | agent | system
    actor_id TEXT,
    actor_name TEXT,
    action TEXT NOT NULL,                  -- opened | customer_message | reply | note | claimed | resolved | escalated | reopened | rated | sla_breach | denied
    body TEXT
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, id);

ALTER TABLE outbox ADD COLUMN ticket_id INTEGER REFERENCES tickets (id);
ALTER TABLE outbox ADD COLUMN coalesce_key TEXT;  -- pending rows with the same key and chat may be sent as one
CREATE INDEX outbox_platform_message ON outbox (chat_id, platform_message_id);
