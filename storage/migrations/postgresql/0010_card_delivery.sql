-- PostgreSQL twin of ../0010_card_delivery.sql: the same schema (ids BIGINT identities, text in
-- byte order like SQLite's: COLLATE "C").
-- A ticket's card must reach the agents (issue 15): the forum topic is opened by an outbox
-- row of its own, a ticket's messages to a chat keep their order across retries, and a
-- message may wait for another one (a customer's confirmation for the agents' card).

-- Why the card could not be delivered to the agents' group (after retries); NULL: delivered
-- or on its way. Shown on the agent page, told to the owner.
ALTER TABLE tickets ADD COLUMN card_undelivered TEXT COLLATE "C";

-- This row goes only once that row is done (sent, failed or unknown).
ALTER TABLE outbox ADD COLUMN after_id BIGINT REFERENCES outbox (id);

-- Unfinished rows of a ticket, looked up for each ticket row the sender considers.
CREATE INDEX outbox_ticket_unfinished ON outbox (ticket_id, chat_id, id)
    WHERE ticket_id IS NOT NULL AND status IN ('pending', 'sending');
CREATE INDEX outbox_after ON outbox (after_id) WHERE after_id IS NOT NULL;
