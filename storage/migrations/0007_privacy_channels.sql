-- Privacy on the web chat and Zalo (issue 7).

-- /mydata on a channel that cannot send a file (Zalo): the export behind a short-lived
-- download link <http.public_url>/mydata/<token>. Only the token's SHA-256 is kept; the
-- row is deleted when it expires (retention job) or when the contact's data is erased.
CREATE TABLE my_data_links (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    contact_id INTEGER,
    document TEXT NOT NULL,               -- the JSON export
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX my_data_links_expiry ON my_data_links (expires_at);
CREATE INDEX my_data_links_contact ON my_data_links (contact_id);

-- The web chat's log: retention deletes old entries; a /mydata file delivered to a page
-- (kind 'document') loses its data after a grace period.
CREATE INDEX web_messages_created ON web_messages (created_at);
CREATE INDEX web_messages_documents ON web_messages (created_at) WHERE kind = 'document';
