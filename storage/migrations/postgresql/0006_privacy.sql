-- PostgreSQL twin of ../0006_privacy.sql: the same schema (ids BIGINT identities, text in
-- byte order like SQLite's: COLLATE "C").
-- Privacy (PDPL 91/2025, Decree 356/2025): the notice each contact was shown, consent and
-- its withdrawal, erasure tombstones, and the indexes the retention purge walks.

-- The privacy notice (flows/texts.py PRIVACY_NOTICE_VERSION) shown to this chat, and the
-- consent given after it: the time and the version of the text the contact agreed to.
ALTER TABLE contacts ADD COLUMN notice_version TEXT COLLATE "C";
ALTER TABLE contacts ADD COLUMN notice_at TEXT COLLATE "C";
ALTER TABLE contacts ADD COLUMN consent_version TEXT COLLATE "C";
ALTER TABLE contacts ADD COLUMN consent_at TEXT COLLATE "C";
ALTER TABLE contacts ADD COLUMN consent_withdrawn_at TEXT COLLATE "C";
-- Set when the person's data was erased: the row stays as an anonymous tombstone that
-- surveys and tickets (kept for statistics) still point to.
ALTER TABLE contacts ADD COLUMN erased_at TEXT COLLATE "C";
ALTER TABLE customers ADD COLUMN erased_at TEXT COLLATE "C";

-- Only rows still holding a payload or a body: the purge never rescans what it cleared.
CREATE INDEX inbox_unpurged ON inbox (received_at) WHERE payload <> '{}';
CREATE INDEX outbox_unpurged ON outbox (created_at) WHERE payload <> '{}';
CREATE INDEX ticket_events_unpurged ON ticket_events (at) WHERE body IS NOT NULL;
