-- The agents' page (issue 20): canned replies, owner-managed, inserted into the reply box with
-- their placeholders filled ({ten_khach}, {ma_phieu}: flows/canned.py). On SQLite the page's
-- push needs no trigger: one process, woken in process after each write (bot/http/agent_feed.py).
CREATE TABLE canned_replies (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
