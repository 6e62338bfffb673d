-- PostgreSQL twin of ../0046_comment_index.sql: a GIN trigram index (pg_trgm) on the folded
-- comment, which LIKE '%...%' uses. Without the extension (not installed, no right to create it)
-- the search scans the date range as before, with this warning.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX surveys_comment_trgm ON surveys USING gin (comment_folded gin_trgm_ops) WHERE comment_folded IS NOT NULL;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'pg_trgm unavailable (%): comment search scans the date range', SQLERRM;
END $$;
