-- PostgreSQL twin of ../0009_survey_indexes.sql: the same schema (ids BIGINT identities, text in
-- byte order like SQLite's: COLLATE "C").
-- Fewer survey index entries moved per answer (issue 7, inbound performance). A survey's
-- status changes at every step (scheduled -> sent -> answered); each index keyed by status
-- moved its entry on every step, two page writes at random places each time.

-- The dispatcher reads only the surveys still waiting (scheduled, awaiting a chat). The OR
-- (not IN) lets SQLite see that "status = 'scheduled'" is covered by this index.
DROP INDEX surveys_status_due;
CREATE INDEX surveys_waiting ON surveys (status, due_at) WHERE status = 'scheduled' OR status = 'awaiting_contact';

-- Only the undeliverable-count reads it, and only skipped surveys.
DROP INDEX surveys_closed;
CREATE INDEX surveys_skipped ON surveys (closed_at) WHERE status = 'skipped';

-- The digest reads answers by time: unanswered surveys need no entry (a range on
-- answered_at implies it is not NULL, so SQLite still uses it).
DROP INDEX surveys_answered;
CREATE INDEX surveys_answered ON surveys (answered_at, score, touchpoint, store, customer_id) WHERE answered_at IS NOT NULL;
