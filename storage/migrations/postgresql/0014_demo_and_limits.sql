-- PostgreSQL twin of ../0014_demo_and_limits.sql. Demo data never counts in the owner's
-- figures (issue 19, item 4): customers, surveys and tickets carry `demo`; a survey or ticket
-- of a demo customer is marked as it is written (a BEFORE INSERT trigger here, where SQLite's
-- updates the new row after it).
ALTER TABLE customers ADD COLUMN demo INTEGER NOT NULL DEFAULT 0;
ALTER TABLE surveys ADD COLUMN demo INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN demo INTEGER NOT NULL DEFAULT 0;

-- Demo data written before this migration: demo customers' external ids start with "demo-".
UPDATE customers SET demo = 1 WHERE external_id LIKE 'demo-%';
UPDATE surveys SET demo = 1 WHERE customer_id IN (SELECT id FROM customers WHERE demo = 1);
UPDATE tickets SET demo = 1 WHERE customer_id IN (SELECT id FROM customers WHERE demo = 1);

CREATE FUNCTION mark_demo() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.customer_id IS NOT NULL AND (SELECT demo FROM customers WHERE id = NEW.customer_id) = 1 THEN
        NEW.demo := 1;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER surveys_demo BEFORE INSERT ON surveys FOR EACH ROW EXECUTE FUNCTION mark_demo();
CREATE TRIGGER tickets_demo BEFORE INSERT ON tickets FOR EACH ROW EXECUTE FUNCTION mark_demo();

-- The digest's covering index of answers, without demo answers (the reports say "demo = 0").
DROP INDEX surveys_answered;
CREATE INDEX surveys_answered ON surveys (answered_at, score, touchpoint, store, customer_id)
    WHERE answered_at IS NOT NULL AND demo = 0;

-- The retention job finds anonymous web sessions that never said anything (issue 19, item 3).
CREATE INDEX contacts_anonymous_web ON contacts (last_seen_at) WHERE channel = 'web' AND customer_id IS NULL;
