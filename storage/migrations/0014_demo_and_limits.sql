-- Demo data never counts in the owner's figures (issue 19, item 4). A demo purchase's
-- customer is marked; its surveys and tickets are marked as they are written (the triggers
-- below), so every report filters with "demo = 0" on the row it already reads.
ALTER TABLE customers ADD COLUMN demo INTEGER NOT NULL DEFAULT 0;
ALTER TABLE surveys ADD COLUMN demo INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN demo INTEGER NOT NULL DEFAULT 0;

-- Demo data written before this migration: demo customers' external ids start with "demo-".
UPDATE customers SET demo = 1 WHERE external_id LIKE 'demo-%';
UPDATE surveys SET demo = 1 WHERE customer_id IN (SELECT id FROM customers WHERE demo = 1);
UPDATE tickets SET demo = 1 WHERE customer_id IN (SELECT id FROM customers WHERE demo = 1);

CREATE TRIGGER surveys_demo AFTER INSERT ON surveys
WHEN (SELECT demo FROM customers WHERE id = NEW.customer_id) = 1
BEGIN
    UPDATE surveys SET demo = 1 WHERE id = NEW.id;
END;

CREATE TRIGGER tickets_demo AFTER INSERT ON tickets
WHEN NEW.customer_id IS NOT NULL AND (SELECT demo FROM customers WHERE id = NEW.customer_id) = 1
BEGIN
    UPDATE tickets SET demo = 1 WHERE id = NEW.id;
END;

-- The digest's covering index of answers, without demo answers (the reports say "demo = 0").
DROP INDEX surveys_answered;
CREATE INDEX surveys_answered ON surveys (answered_at, score, touchpoint, store, customer_id)
    WHERE answered_at IS NOT NULL AND demo = 0;

-- The retention job finds anonymous web sessions that never said anything (issue 19, item 3).
CREATE INDEX contacts_anonymous_web ON contacts (last_seen_at) WHERE channel = 'web' AND customer_id IS NULL;
