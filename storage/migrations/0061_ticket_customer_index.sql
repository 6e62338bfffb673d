-- A customer's tickets by kind and status: whether a complaint of theirs is open is read
-- before every survey dispatch (storage/surveys.dispatch_facts), and their tickets are listed
-- in the dashboard's customer history. Without it both scanned the whole tickets table.
CREATE INDEX tickets_customer ON tickets (customer_id, kind, status);
