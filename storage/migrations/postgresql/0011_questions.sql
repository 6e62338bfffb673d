-- PostgreSQL twin of ../0011_questions.sql: the same schema (ids BIGINT identities, text in
-- byte order like SQLite's: COLLATE "C").
-- Questions (issue 15): a message no flow is waiting for becomes a light ticket of kind
-- 'question' (no complaint intake; its own first-response target), relayed both ways like
-- a complaint. Existing rows are complaints.
ALTER TABLE tickets ADD COLUMN kind TEXT COLLATE "C" NOT NULL DEFAULT 'complaint' CHECK (kind IN ('complaint', 'question'));
