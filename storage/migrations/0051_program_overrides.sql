-- Survey programs edited on the dashboard (issue 21): config's [[programs]] define each program
-- (name, kind, trigger); an owner's edits are kept here as the changed keys, in the config's own
-- format, and applied over the config's table (the same checks). Deleting the row is "reset to
-- config". A program no longer in the config: its row is ignored.
CREATE TABLE program_overrides (
    program TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL DEFAULT 1,
    changes TEXT NOT NULL DEFAULT '{}',   -- JSON: delay, days, every_days, touchpoints, stores, tiers, channels, vi, en
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL              -- the owner's login (the change is also in account_events)
);
