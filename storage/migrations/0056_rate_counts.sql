-- Abuse limits counted in the database, so that several instances on one PostgreSQL database
-- keep them for the bot as a whole (bot/limits.py): events per key in the current window
-- (`slot` = floor(epoch seconds / window)) and in the one before, for a sliding estimate.
-- A lone SQLite instance counts in memory; the table is here so both schemas are the same.
CREATE TABLE rate_counts (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    slot INTEGER NOT NULL,
    count INTEGER NOT NULL,
    previous INTEGER NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (name, key)
);
CREATE INDEX rate_counts_expires ON rate_counts (expires);
