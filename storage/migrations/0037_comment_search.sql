-- Comment search on the dashboard (issue 20): the comment folded for Vietnamese search (lower
-- case, no diacritics, đ -> d; storage/folding.py), written with the comment, cleared with it.
-- Comments from before this version are folded at start (bot/services/rollups.py).
ALTER TABLE surveys ADD COLUMN comment_folded TEXT;
-- Comments by answer time: the dashboard lists and searches a date range.
CREATE INDEX surveys_commented ON surveys (answered_at) WHERE comment IS NOT NULL;
-- A comment's complaint (the dashboard links each comment to it).
CREATE INDEX tickets_purchase ON tickets (purchase_id);
