-- PostgreSQL twin of ../0051_program_overrides.sql.
CREATE TABLE program_overrides (
    program TEXT COLLATE "C" PRIMARY KEY,
    enabled INTEGER NOT NULL DEFAULT 1,
    changes TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT COLLATE "C" NOT NULL,
    updated_by TEXT COLLATE "C" NOT NULL
);
