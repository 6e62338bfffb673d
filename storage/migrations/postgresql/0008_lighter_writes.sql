-- PostgreSQL twin of ../0008_lighter_writes.sql: the same schema (ids BIGINT identities, text in
-- byte order like SQLite's: COLLATE "C").
-- Fewer index entries written per inbound update (issue 7, inbound performance): each one
-- dirties a page at a random place, written whole to the WAL and copied again at the
-- checkpoint.

-- Outbox rows are written without a platform message id (the sender adds it once sent):
-- the lookup by platform message (a reply to a ticket card) needs only the sent ones.
DROP INDEX outbox_platform_message;
CREATE INDEX outbox_platform_message ON outbox (chat_id, platform_message_id) WHERE platform_message_id IS NOT NULL;
-- The last text queued for a Zalo chat (its numbered choices) was found by the index above.
CREATE INDEX outbox_zalo_chat ON outbox (chat_id, id) WHERE channel = 'zalo' AND method = 'send_text';

-- last_seen_at changes with every message; a customer's few contacts are sorted in memory.
DROP INDEX contacts_customer;
CREATE INDEX contacts_customer ON contacts (customer_id);

-- Updates are now recorded already processed: only those left unprocessed (a crash, a
-- webhook that answers before handling) need finding at start.
DROP INDEX inbox_unprocessed;
CREATE INDEX inbox_unprocessed ON inbox (id) WHERE processed_at IS NULL;

-- Rows that may ride along with an agent's message (same chat, same key, still pending):
-- looked up at every such send, which otherwise walked every pending row (a survey drain
-- of thousands). Only rows with a key are in it.
CREATE INDEX outbox_coalesce ON outbox (chat_id, coalesce_key, id) WHERE status = 'pending' AND coalesce_key IS NOT NULL;
