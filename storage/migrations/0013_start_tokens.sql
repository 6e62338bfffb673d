-- A receipt is not a key to someone's data (issue 19). The deep-link / web-chat start token
-- belongs to one order: it lets a chat answer that order's survey and complain about that
-- order, until it expires or the shop revokes it. It no longer links the chat to the
-- customer: a chat is the customer's (contacts.customer_id) only when the shop or the
-- platform vouched for it (contacts.verified_by).

-- One live token per order; re-posting the order with "revoke_link" revokes it and makes a
-- new one. Valid until `privacy.start_token_days` after the order's survey closed.
CREATE TABLE start_tokens (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    purchase_id INTEGER NOT NULL REFERENCES purchases (id),
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX start_tokens_purchase ON start_tokens (purchase_id);
CREATE INDEX start_tokens_customer ON start_tokens (customer_id);

-- The chats that opened a start token: each may answer that order's survey and complain
-- about it, nothing more.
CREATE TABLE start_token_uses (
    id INTEGER PRIMARY KEY,
    token_id INTEGER NOT NULL REFERENCES start_tokens (id),
    purchase_id INTEGER NOT NULL REFERENCES purchases (id),
    contact_id INTEGER NOT NULL REFERENCES contacts (id),
    used_at TEXT NOT NULL,
    UNIQUE (token_id, contact_id)
);
CREATE INDEX start_token_uses_contact ON start_token_uses (contact_id);
CREATE INDEX start_token_uses_purchase ON start_token_uses (purchase_id, used_at);

-- How a chat's link to its customer was proved: shop (a user id posted with a purchase),
-- customer_token (the shop site's signed token), phone (the platform's own phone sharing),
-- first_token (the first chat to open a receipt, when the shop trusts that), shop_cli.
ALTER TABLE contacts ADD COLUMN verified_by TEXT;

-- Orders posted before this version: the customer's old link token (on their printed
-- receipts) becomes the token of their latest order; older orders get a fresh token.
INSERT INTO start_tokens (token, purchase_id, customer_id, created_at)
SELECT CASE WHEN p.id = (SELECT p2.id FROM purchases p2 WHERE p2.customer_id = p.customer_id
                         ORDER BY p2.purchased_at DESC, p2.id DESC LIMIT 1)
            THEN c.link_token ELSE 'm' || lower(hex(randomblob(16))) END,
       p.id, p.customer_id, p.created_at
FROM purchases p JOIN customers c ON c.id = p.customer_id
WHERE c.erased_at IS NULL;

-- Chats linked before this version: those the shop named (its Telegram / Zalo user id) stay
-- the customer's; the others were linked by a receipt link, which proves nothing: they keep
-- answering and complaining about the customer's orders so far, as token users.
UPDATE contacts SET verified_by = 'shop'
WHERE customer_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM customers c WHERE c.id = contacts.customer_id
    AND ((contacts.channel = 'telegram' AND contacts.platform_user_id = c.telegram_user_id)
      OR (contacts.channel = 'zalo' AND contacts.platform_user_id = c.zalo_user_id)));
INSERT INTO start_token_uses (token_id, purchase_id, contact_id, used_at)
SELECT t.id, t.purchase_id, ct.id, ct.last_seen_at
FROM contacts ct JOIN start_tokens t ON t.customer_id = ct.customer_id
WHERE ct.customer_id IS NOT NULL AND ct.verified_by IS NULL AND ct.erased_at IS NULL;
UPDATE contacts SET customer_id = NULL WHERE customer_id IS NOT NULL AND verified_by IS NULL AND erased_at IS NULL;
