-- PostgreSQL twin of ../0063_survey_first_due.sql.
-- A survey postponed (quiet hours, a chat's window, the ZNS day's quota or night ban) gets a
-- new due_at; its lateness still counts from the due time it had first, kept here (NULL:
-- never postponed, due_at is that time). Without it each postponement restarted
-- survey.max_lateness and a survey could wait day after day, sent any number of days late.

ALTER TABLE surveys ADD COLUMN first_due_at TEXT COLLATE "C";
