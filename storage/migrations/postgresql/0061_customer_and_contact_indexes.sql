-- Lookups that scanned a whole table, found by explaining the statements the tests run:
-- - a customer's tickets by kind and status: whether a complaint of theirs is open is read
--   before every survey dispatch (storage/surveys.dispatch_facts), and their tickets are
--   listed in the dashboard's customer history;
-- - a contact's surveys: the web chat's purge of silent sessions asks, for every anonymous
--   web contact, whether a survey points at it (storage/web_messages._SILENT).
CREATE INDEX tickets_customer ON tickets (customer_id, kind, status);
CREATE INDEX surveys_contact ON surveys (contact_id);
