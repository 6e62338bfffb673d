-- Survey programs (issue 21, flows/programs.py): the surveys of [[programs]] other than the
-- purchase CSAT (which stays in `surveys`): nps, ces, usage, brand, ideas, and csat asked by
-- another trigger. One row per question asked of one customer.
-- status: scheduled -> sent -> answered | expired; or skipped (skip_reason)
CREATE TABLE program_surveys (
    id INTEGER PRIMARY KEY,
    program TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('csat', 'nps', 'ces', 'usage', 'brand', 'ideas')),
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    purchase_id INTEGER REFERENCES purchases (id),   -- the purchase it follows, if any
    ticket_id INTEGER REFERENCES tickets (id),       -- the resolved complaint it follows, if any
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'sent', 'answered', 'expired', 'skipped')),
    skip_reason TEXT,
    priority INTEGER NOT NULL,
    due_at TEXT NOT NULL,
    deadline_at TEXT NOT NULL,                       -- not sent by then: skipped (too late)
    contact_id INTEGER REFERENCES contacts (id),
    language TEXT,
    sent_at TEXT,
    answered_at TEXT,
    score INTEGER CHECK (score BETWEEN 0 AND 10),
    choice TEXT,
    comment TEXT,
    closed_at TEXT,
    created_at TEXT NOT NULL,
    demo INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX program_surveys_due ON program_surveys (status, due_at);
CREATE INDEX program_surveys_customer ON program_surveys (customer_id, program, created_at);
CREATE INDEX program_surveys_customer_sent ON program_surveys (customer_id, sent_at);
CREATE INDEX program_surveys_answered ON program_surveys (answered_at, kind);
CREATE UNIQUE INDEX program_surveys_purchase ON program_surveys (program, purchase_id) WHERE purchase_id IS NOT NULL;
CREATE UNIQUE INDEX program_surveys_ticket ON program_surveys (program, ticket_id) WHERE ticket_id IS NOT NULL;
