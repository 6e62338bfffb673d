-- PostgreSQL twin of ../0037_comment_search.sql: the folded comment for Vietnamese search.
ALTER TABLE surveys ADD COLUMN comment_folded TEXT;
CREATE INDEX surveys_commented ON surveys (answered_at) WHERE comment IS NOT NULL;
-- A comment's complaint (the dashboard links each comment to it).
CREATE INDEX tickets_purchase ON tickets (purchase_id);
