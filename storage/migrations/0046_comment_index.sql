-- Comment search without a scan (issue 20): an FTS5 trigram index over the folded comment
-- (external content: the text itself stays only in surveys.comment_folded). Any substring of 3
-- characters or more is found through it, as LIKE '%...%' found it. Kept in sync by triggers on
-- every write of the folded comment; an erasure's blanking deletes the entries, and
-- storage/privacy.py then merges the index so no segment keeps the erased trigrams.
CREATE VIRTUAL TABLE comments_fts USING fts5(comment_folded, content='surveys', content_rowid='id', tokenize='trigram');
INSERT INTO comments_fts (comments_fts) VALUES ('rebuild');
CREATE TRIGGER comments_fts_insert AFTER INSERT ON surveys WHEN NEW.comment_folded IS NOT NULL
BEGIN
    INSERT INTO comments_fts (rowid, comment_folded) VALUES (NEW.id, NEW.comment_folded);
END;
CREATE TRIGGER comments_fts_update AFTER UPDATE OF comment_folded ON surveys
WHEN OLD.comment_folded IS NOT NEW.comment_folded
BEGIN
    INSERT INTO comments_fts (comments_fts, rowid, comment_folded)
        SELECT 'delete', OLD.id, OLD.comment_folded WHERE OLD.comment_folded IS NOT NULL;
    INSERT INTO comments_fts (rowid, comment_folded) SELECT NEW.id, NEW.comment_folded WHERE NEW.comment_folded IS NOT NULL;
END;
CREATE TRIGGER comments_fts_delete AFTER DELETE ON surveys WHEN OLD.comment_folded IS NOT NULL
BEGIN
    INSERT INTO comments_fts (comments_fts, rowid, comment_folded) VALUES ('delete', OLD.id, OLD.comment_folded);
END;
