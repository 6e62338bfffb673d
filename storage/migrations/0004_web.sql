-- The web chat channel: what each visitor's chat shows, in order. A visitor is a contact
-- with channel 'web' whose platform_user_id and chat_id are the (server-signed) session id.
-- kind: message (from the bot) | edit (replaces a message's text and buttons) |
--       notice (a button's toast) | visitor (what the visitor wrote, echoed to their other tabs).
-- id is the resume cursor: a client that reconnects asks for everything after the last id it saw.
CREATE TABLE web_messages (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    client_id TEXT,                       -- the visitor's frame id (a re-sent frame is stored once)
    body TEXT NOT NULL,                   -- JSON: text, buttons, target (edit), ...
    created_at TEXT NOT NULL
);
CREATE INDEX web_messages_session ON web_messages (session_id, id);
CREATE UNIQUE INDEX web_messages_client ON web_messages (session_id, client_id) WHERE client_id IS NOT NULL;
