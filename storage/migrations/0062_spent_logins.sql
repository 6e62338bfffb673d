-- "Log in with Telegram" data stays valid for a day (bot/channels/telegram/login_widget.py): each
-- signed login is used once, so a sign-in URL found later (a browser's history, a proxy's log)
-- opens no second session. `key` is the SHA-256 of the data's signature; a row is forgotten once
-- the data would be refused as stale anyway.
CREATE TABLE spent_logins (
    key TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
