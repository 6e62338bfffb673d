-- "Log in with Telegram" (issue 20): an account is linked to at most one Telegram user id and a
-- Telegram user id to at most one account (the column came with 0034_accounts.sql, unused
-- until now). NULL, not linked, may repeat.
CREATE UNIQUE INDEX accounts_telegram_user ON accounts (telegram_user_id);
