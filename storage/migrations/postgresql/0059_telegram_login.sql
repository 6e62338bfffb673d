-- PostgreSQL twin of ../0059_telegram_login.sql: one account per Telegram user id (NULLs repeat).
CREATE UNIQUE INDEX accounts_telegram_user ON accounts (telegram_user_id);
