-- Ideas and wishes left with /gopy or an ideas program (issue 21): their own kind, never
-- complaints; `topic` routes them to the department that owns it.
CREATE TABLE ideas (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER REFERENCES customers (id),
    contact_id INTEGER REFERENCES contacts (id),
    program_survey_id INTEGER REFERENCES program_surveys (id),
    topic TEXT NOT NULL,
    text TEXT,
    created_at TEXT NOT NULL,
    demo INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ideas_created ON ideas (created_at, topic);
CREATE INDEX ideas_contact ON ideas (contact_id);
CREATE INDEX ideas_customer ON ideas (customer_id);
