-- Images a web chat visitor attached (bot/channels/web/server.py, POST /chat/upload): kept in
-- the database so that every instance can serve them and a backup holds them. One row per
-- image, linked to the visitor's web_messages entry that carries it (message_id; the entry
-- may be purged before it) and found by its session like that log. A ticket refers to one as
-- "web:<id>" in its photos. Checked by their first bytes before they are stored: JPEG, PNG,
-- WebP or GIF only (mime_type is what those bytes are, never what the browser said).
-- Erasure deletes a person's rows (storage/privacy.py), and the retention purge old ones.
CREATE TABLE web_uploads (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    message_id INTEGER,
    mime_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX web_uploads_session ON web_uploads (session_id, id);
CREATE INDEX web_uploads_created ON web_uploads (created_at);
